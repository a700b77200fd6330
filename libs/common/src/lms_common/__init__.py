"""The shared runtime of the LMS services. Each module is one concern; see the README."""
