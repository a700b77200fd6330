"""Enrollment's REST API, one blueprint per resource."""

from enrollment.api import assignments, certificates, grants, learning, programs, quizzes

BLUEPRINTS = [grants.blp, learning.blp, programs.blp, assignments.blp, quizzes.blp, certificates.blp]
