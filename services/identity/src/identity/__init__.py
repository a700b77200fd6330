"""LMS identity: people, organizations, roles and OAuth 2."""
