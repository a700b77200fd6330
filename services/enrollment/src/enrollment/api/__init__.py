"""Enrollment's REST API, one blueprint per resource."""

from enrollment.api import assignments, certificates, cohorts, grants, learning, programs, quizzes

BLUEPRINTS = [grants.blp, learning.blp, programs.blp, cohorts.blp, assignments.blp, quizzes.blp, certificates.blp]
