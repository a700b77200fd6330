"""Products: ordered bundles of courses, activated once every course is published."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from catalog import services, views
from catalog.api import schemas as s
from catalog.api.common import READERS, WRITERS, actor, listing
from catalog.models import Product
from lms_common.api import unit_of_work
from lms_common.auth import require

blp = Blueprint("products", __name__, url_prefix="/v1", description="Products: bundles of courses")


@blp.route("/products")
class Products(MethodView):
    @require(*READERS)
    @blp.arguments(s.ProductQuery, location="query")
    @blp.response(200, s.ProductPage)
    def get(self, args: dict[str, Any]) -> Any:
        """List the products the caller may see (learners: active only); filters `status`, `q`"""
        return listing(services.product_query(actor(), args.get("status"), args.get("q")), Product, args, views.product)

    @require(*WRITERS)
    @blp.arguments(s.ProductCreate)
    @blp.response(201, s.ProductOut)
    def post(self, body: dict[str, Any]) -> Any:
        """Create an inactive product holding these courses, in this order"""
        with unit_of_work() as session:
            return views.product(services.create_product(session, actor(), body["title"], body["course_ids"]))


@blp.route("/products/<product_id>")
class ProductItem(MethodView):
    @require(*READERS)
    @blp.response(200, s.ProductOut)
    def get(self, product_id: str) -> Any:
        """Read a product (an inactive one answers 404 to learners)"""
        with unit_of_work() as session:
            return views.product(services.get_product(session, actor(), product_id))

    @require(*WRITERS)
    @blp.arguments(s.ProductUpdate)
    @blp.response(200, s.ProductOut)
    def patch(self, body: dict[str, Any], product_id: str) -> Any:
        """Rename a product"""
        with unit_of_work() as session:
            return views.product(services.update_product(session, actor(), product_id, body))


@blp.route("/products/<product_id>/courses", methods=["PUT"])
@require(*WRITERS)
@blp.arguments(s.CourseIds)
@blp.response(200, s.ProductOut)
@blp.alt_response(409, description="an active product takes published courses only")
def set_product_courses(body: dict[str, Any], product_id: str) -> Any:
    """Replace and reorder the product's courses atomically"""
    with unit_of_work() as session:
        return views.product(services.set_product_courses(session, actor(), product_id, body["course_ids"]))


@blp.route("/products/<product_id>/activate", methods=["POST"])
@require(*WRITERS)
@blp.response(200, s.ProductOut)
@blp.alt_response(409, description="a course of the product is not published (named in the problem)")
def activate_product(product_id: str) -> Any:
    """Activate a product: every course in it must be published"""
    with unit_of_work() as session:
        return views.product(services.activate_product(session, actor(), product_id))


@blp.route("/products/<product_id>/deactivate", methods=["POST"])
@require(*WRITERS)
@blp.response(200, s.ProductOut)
def deactivate_product(product_id: str) -> Any:
    """Deactivate a product: its courses close to its grants"""
    with unit_of_work() as session:
        return views.product(services.deactivate_product(session, actor(), product_id))
