"""Two order days landed, projected and aggregated once for the dashboard's tests."""

import dagster as dg
import pytest

from sales_cdc.dashboard.data import DashboardData
from sales_cdc.defs.analytics.assets import ASSETS
from sales_cdc.defs.analytics.checks import ASSET_CHECKS
from sales_cdc.resources.aws import AwsResource
from sales_cdc.settings import Settings
from sales_cdc_tests.defs.analytics.test_aggregates import project, resources
from sales_cdc_tests.lake_data import catalog_raw_table, event, land, setup_lake

DAY, NEXT_DAY = "2026-03-01", "2026-03-02"
WIDGET = {"product_id": "p-1", "product_name": "Widget", "category": "Tools", "unit_price": 10.0}
GADGET = {"product_id": "p-2", "product_name": "Gadget", "category": "Tools", "unit_price": 4.99}
BOOK = {"product_id": "p-3", "product_name": "Book", "category": "Books", "unit_price": 7.25}


def customer(cid: str, country: str, channel: str, payment: str, currency: str) -> dict:
    return {
        "customer_id": cid,
        "customer_country": country,
        "channel": channel,
        "payment_method": payment,
        "currency": currency,
    }


ADA = customer("c-1", "GB", "WEB", "CARD", "USD")
BEN = customer("c-2", "DE", "MOBILE", "PAYPAL", "EUR")


def order(order_id, seq, who, product, quantity, total, status, when) -> dict:
    return event(
        order_id,
        seq,
        "INSERT",
        **who,
        **product,
        quantity=quantity,
        total=total,
        status=status,
        created_at=f"{when}.000000Z",
        event_time=when.replace("T", " ") + ".000000",
    )


ORDERS_DAY = [
    order("o1", 1, ADA, WIDGET, 2, 20.0, "PLACED", f"{DAY}T10:15:00"),
    order("o2", 2, ADA, GADGET, 1, 4.99, "PAID", f"{DAY}T11:05:00"),
    order("o3", 3, BEN, BOOK, 3, 21.75, "DELIVERED", f"{DAY}T11:30:00"),
    order(
        "o4", 4, customer("c-3", "US", "WEB", "CARD", "USD"), WIDGET, 1, 10, "CANCELLED",
        f"{DAY}T12:00:00",
    ),
]  # fmt: skip
ORDERS_NEXT_DAY = [
    order(
        "o5", 5, customer("c-4", "DE", "WEB", "CARD", "EUR"), WIDGET, 1, 10, "RETURNED",
        f"{NEXT_DAY}T08:00:00",
    ),
    order(
        "o6", 6, customer("c-5", "US", "MOBILE", "CARD", "USD"), WIDGET, 4, 40, "SHIPPED",
        f"{NEXT_DAY}T09:00:00",
    ),
]  # fmt: skip
PARAMS = {"start_date": DAY, "end_date": NEXT_DAY, "currencies": ["EUR", "USD"]}


PREFIX = "tdashboard"


@pytest.fixture(scope="session")
def lake(emulator) -> AwsResource:
    """Two order days landed, projected and aggregated in a deployment of the dashboard tests."""
    aws = AwsResource(
        env="local",
        prefix=PREFIX,
        region_name="us-east-1",
        endpoint_url=emulator.endpoint,
        max_attempts=10,
    )
    setup_lake(aws)
    land(aws, ORDERS_DAY)
    land(aws, ORDERS_NEXT_DAY, hour="2026/03/02/09")
    catalog_raw_table(aws)
    project(aws)
    for day in (DAY, NEXT_DAY):
        result = dg.materialize(
            [*ASSETS, *ASSET_CHECKS], resources=resources(aws), partition_key=day
        )
        assert result.success
        assert all(e.passed for e in result.get_asset_check_evaluations())
    return aws


@pytest.fixture
def data(lake: AwsResource) -> DashboardData:
    settings = Settings(
        env="local", prefix=PREFIX, region="us-east-1", endpoint_url=lake.endpoint_url
    )
    return DashboardData(settings)
