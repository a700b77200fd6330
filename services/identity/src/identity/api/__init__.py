"""identity's HTTP API: the OAuth 2 endpoints and the REST resources of CONTRACT section 3."""
