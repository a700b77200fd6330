from catalog_helpers import ok


def test_openapi_lists_every_contract_endpoint(app):
    paths = ok(app.test_client().get("/openapi.json"))["paths"]
    for path in [
        "/v1/courses",
        "/v1/courses/{course_id}/publish",
        "/v1/products/{product_id}/activate",
        "/v1/courses/{course_id}/modules/order",
        "/v1/lessons/{lesson_id}/scorm",
        "/v1/cohorts",
    ]:
        assert path in paths
