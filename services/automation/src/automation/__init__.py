"""LMS automation: rules, runs, event ingress, dead letters."""
