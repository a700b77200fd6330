"""The catalog's REST API, one blueprint per resource."""

from catalog.api import cohorts, courses, products, programs, quizzes

BLUEPRINTS = [courses.blp, products.blp, programs.blp, quizzes.blp, cohorts.blp]
