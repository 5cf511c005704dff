"""python -m waagent_doctor."""

from waagent_doctor.cli import entry

entry()
