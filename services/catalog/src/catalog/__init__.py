"""LMS catalog: products, courses, modules, lessons, programs."""
