"""LMS reporting: completion, compliance and audit reports."""
