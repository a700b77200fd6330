"""LMS enrollment: grants, enrollments, progress, assignments, certificates."""
