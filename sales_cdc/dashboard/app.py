"""The sales dashboard (Streamlit): layout only; every figure comes from sales_cdc/sql/dashboard_*.sql
through the project's QueryEngine, refreshed every few seconds."""

from __future__ import annotations

import datetime as dt
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from sales_cdc.dashboard.data import (
    Answer,
    DashboardData,
    dagster_state,
    freshness_params,
    what_to_run,
)

REFRESH_SECONDS = 10
DEFAULT_DAYS = 7
MONEY = ",.2f"


@st.cache_resource
def _data() -> DashboardData:
    return DashboardData()


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _age(when: dt.datetime | None, now: dt.datetime) -> str:
    if when is None:
        return "never"
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _empty(answer: Answer) -> bool:
    """Show the empty state of a chart whose query has no rows; True when it had none."""
    if answer.empty:
        st.info(answer.empty_state(), icon=":material/hourglass_empty:")
        return True
    return False


def _chart(chart: alt.Chart, key: str) -> None:
    st.altair_chart(chart, key=key)


def _per_currency(frame: pd.DataFrame, draw, key: str) -> None:
    """One chart per currency, side by side: amounts in different currencies never share an axis."""
    currencies = sorted(frame["currency"].dropna().unique())
    for column, currency in zip(st.columns(len(currencies)), currencies, strict=True):
        with column:
            st.caption(currency)
            _chart(draw(frame[frame["currency"] == currency], currency), f"{key}-{currency}")


# --- sections ---------------------------------------------------------------------------------


def sales_performance(data: DashboardData, params: dict[str, Any], tables: set[str]) -> None:
    st.header("Sales performance")
    daily = data.run("dashboard_sales_daily", params, tables)
    hourly = data.run("dashboard_sales_hourly", params, tables)
    if _empty(daily):
        return
    today, yesterday = (
        params["end_date"],
        str(dt.date.fromisoformat(params["end_date"]) - dt.timedelta(days=1)),
    )
    frame = daily.frame
    cols = st.columns(len(frame["currency"].unique()) + 1)
    day_orders = frame[frame["order_date"] == today]["orders"].sum()
    prev_orders = frame[frame["order_date"] == yesterday]["orders"].sum()
    had_day_before = bool((frame["order_date"] == yesterday).any())
    cols[0].metric(
        f"Orders on {today}",
        f"{int(day_orders):,}",
        delta=f"{int(day_orders - prev_orders):+,} vs day before" if had_day_before else None,
    )
    for col, currency in zip(cols[1:], sorted(frame["currency"].unique()), strict=True):
        rows = frame[frame["currency"] == currency]
        now = rows[rows["order_date"] == today]["net_revenue"].sum()
        before = rows[rows["order_date"] == yesterday]["net_revenue"].sum()
        col.metric(
            f"Net revenue on {today} · {currency}",
            f"{now:,.2f}",
            delta=f"{now - before:+,.2f} vs day before" if had_day_before else None,
        )

    st.subheader("Net revenue and orders per day")

    def per_day(rows: pd.DataFrame, currency: str) -> alt.Chart:
        tooltip = [
            alt.Tooltip("order_date:N", title="order day"),
            alt.Tooltip("net_revenue:Q", title=f"net revenue ({currency})", format=MONEY),
            alt.Tooltip("orders:Q", title="orders"),
            alt.Tooltip("units:Q", title="units"),
        ]
        base = alt.Chart(rows).encode(x=alt.X("order_date:N", title="order day (UTC)"))
        bars = base.mark_bar(opacity=0.8).encode(
            y=alt.Y("net_revenue:Q", title=f"net revenue ({currency})"), tooltip=tooltip
        )
        line = base.mark_line(point=True, color="#e45756").encode(
            y=alt.Y("orders:Q", title="orders"), tooltip=tooltip
        )
        return alt.layer(bars, line).resolve_scale(y="independent")

    _per_currency(frame, per_day, "sales-daily")

    st.subheader("Net revenue per hour: today against the previous days")
    if _empty(hourly):
        return

    def per_hour(rows: pd.DataFrame, currency: str) -> alt.Chart:
        now = str(_today())
        rows = rows.assign(day=rows["order_date"].where(rows["order_date"] != now, "today"))
        return (
            alt.Chart(rows)
            .mark_line(point=True)
            .encode(
                x=alt.X("hour_of_day:O", title="hour of the day (UTC)"),
                y=alt.Y("net_revenue:Q", title=f"net revenue ({currency})"),
                color=alt.Color("day:N", title="order day"),
                strokeWidth=alt.condition(alt.datum.day == "today", alt.value(4), alt.value(1.5)),
                tooltip=[
                    alt.Tooltip("order_date:N", title="order day"),
                    alt.Tooltip("hour_of_day:O", title="hour"),
                    alt.Tooltip("net_revenue:Q", title=f"net revenue ({currency})", format=MONEY),
                    alt.Tooltip("orders:Q", title="orders"),
                ],
            )
        )

    _per_currency(hourly.frame, per_hour, "sales-hourly")


def order_funnel(data: DashboardData, params: dict[str, Any], tables: set[str]) -> None:
    st.header("Order funnel")
    funnel = data.run("dashboard_order_funnel", params, tables)
    rates = data.run("dashboard_order_rates", params, tables)
    if _empty(funnel):
        return
    left, right = st.columns(2)
    with left:
        st.subheader("Orders per current status")
        order = list(funnel.frame["status"])
        _chart(
            alt.Chart(funnel.frame)
            .mark_bar()
            .encode(
                x=alt.X("orders:Q", title="live orders"),
                y=alt.Y("status:N", sort=order, title=None),
                color=alt.Color("status:N", sort=order, legend=None),
                tooltip=[
                    "status:N",
                    alt.Tooltip("orders:Q", title="orders now in this status"),
                    alt.Tooltip("reached_orders:Q", title="orders that reached this step"),
                ],
            ),
            "funnel",
        )
    with right:
        st.subheader("Cancel and return rates per day")
        if _empty(rates):
            return
        long = rates.frame.melt(
            id_vars=["order_date", "orders"],
            value_vars=["cancel_rate", "return_rate"],
            var_name="rate",
            value_name="share",
        )
        _chart(
            alt.Chart(long)
            .mark_line(point=True)
            .encode(
                x=alt.X("order_date:N", title="order day (UTC)"),
                y=alt.Y("share:Q", title="share of the day's orders", axis=alt.Axis(format="%")),
                color=alt.Color("rate:N", title=None),
                tooltip=[
                    alt.Tooltip("order_date:N", title="order day"),
                    "rate:N",
                    alt.Tooltip("share:Q", format=".1%"),
                    alt.Tooltip("orders:Q", title="orders of the day"),
                ],
            ),
            "rates",
        )


def products(data: DashboardData, params: dict[str, Any], tables: set[str]) -> None:
    st.header("Products and categories")
    top = data.run("dashboard_top_products", params, tables)
    categories = data.run("dashboard_categories", params, tables)
    if _empty(top):
        return
    tooltip = [
        "product_name:N",
        "category:N",
        alt.Tooltip("net_revenue:Q", format=MONEY, title="net revenue"),
        alt.Tooltip("units:Q", title="units sold"),
        alt.Tooltip("orders:Q", title="orders"),
    ]

    def by(measure: str, rank: str, title: str):
        def draw(rows: pd.DataFrame, currency: str) -> alt.Chart:
            rows = rows[rows[rank] <= 10]
            return (
                alt.Chart(rows)
                .mark_bar()
                .encode(
                    x=alt.X(
                        f"{measure}:Q",
                        title=f"{title} ({currency})" if measure == "net_revenue" else title,
                    ),
                    y=alt.Y("product_name:N", sort="-x", title=None),
                    color=alt.Color("category:N", legend=alt.Legend(orient="bottom")),
                    tooltip=tooltip,
                )
            )

        return draw

    st.subheader("Top 10 products by net revenue")
    _per_currency(top.frame, by("net_revenue", "revenue_rank", "net revenue"), "top-revenue")
    st.subheader("Top 10 products by units sold")
    _per_currency(top.frame, by("units", "units_rank", "units sold"), "top-units")
    st.subheader("Categories")
    if _empty(categories):
        return

    def per_category(rows: pd.DataFrame, currency: str) -> alt.Chart:
        return (
            alt.Chart(rows)
            .mark_bar()
            .encode(
                x=alt.X("net_revenue:Q", title=f"net revenue ({currency})"),
                y=alt.Y("category:N", sort="-x", title=None),
                tooltip=[
                    "category:N",
                    alt.Tooltip("net_revenue:Q", format=MONEY, title="net revenue"),
                    alt.Tooltip("units:Q", title="units sold"),
                    alt.Tooltip("orders:Q", title="orders"),
                ],
            )
        )

    _per_currency(categories.frame, per_category, "categories")


def customers(data: DashboardData, params: dict[str, Any], tables: set[str]) -> None:
    st.header("Customer behaviour")
    answer = data.run("dashboard_customers", params, tables)
    repeat = data.run("dashboard_repeat_customers", params, tables)
    if _empty(answer):
        return
    frame = answer.frame
    titles = {
        "country": "customer country",
        "channel": "channel",
        "payment_method": "payment method",
    }
    for column, (dimension, title) in zip(st.columns(3), titles.items(), strict=True):
        with column:
            st.subheader(f"By {title}")
            rows = frame[frame["dimension"] == dimension]
            _chart(
                alt.Chart(rows)
                .mark_bar()
                .encode(
                    x=alt.X("orders:Q", title="orders"),
                    y=alt.Y("value:N", sort="-x", title=None),
                    color=alt.Color("currency:N"),
                    tooltip=[
                        alt.Tooltip("value:N", title=title),
                        "currency:N",
                        alt.Tooltip("orders:Q", title="orders"),
                        alt.Tooltip("net_revenue:Q", format=MONEY, title="net revenue"),
                    ],
                ),
                f"customers-{dimension}",
            )
    st.subheader("Repeat customers per day")
    st.caption("Customers with more than one order on the same order day, among all who ordered.")
    if _empty(repeat):
        return
    long = repeat.frame.melt(
        id_vars=["order_date", "customers"],
        value_vars=["repeat_customers", "one_time_customers"],
        var_name="kind",
        value_name="count",
    )
    _chart(
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("order_date:N", title="order day (UTC)"),
            y=alt.Y("count:Q", title="customers"),
            color=alt.Color("kind:N", title=None),
            tooltip=[
                alt.Tooltip("order_date:N", title="order day"),
                "kind:N",
                "count:Q",
                alt.Tooltip("customers:Q", title="customers of the day"),
            ],
        ),
        "repeat",
    )


def pipeline_health(data: DashboardData, tables: set[str]) -> None:
    st.header("Pipeline health")
    now = dt.datetime.now(dt.UTC)
    fresh = data.run("dashboard_freshness", freshness_params(now), tables)
    failed = data.failed_records()
    state = dagster_state()
    cols = st.columns(4)
    newest = {}
    if not fresh.empty:
        newest = {
            row["stage"]: (None if pd.isna(row["newest_event_time"]) else row["newest_event_time"])
            for _, row in fresh.frame.iterrows()
        }
    landed, merged = newest.get("orders_cdc"), newest.get("orders_current")
    cols[0].metric("Newest event landed", _age(landed, now), help="orders_cdc, today and yesterday")
    cols[1].metric("Newest event in orders_current", _age(merged, now))
    lag = (
        f"{max(0, int((landed - merged).total_seconds()))} s"
        if landed is not None and merged is not None
        else "n/a"
    )
    cols[2].metric("orders_current behind the landing", lag)
    cols[3].metric(
        "Failed records waiting in errors/",
        f"{failed.objects} objects",
        delta=f"{failed.bytes:,} bytes" if failed.objects else None,
        delta_color="inverse",
        help=failed.prefix,
    )
    if fresh.missing_table:
        st.info(fresh.empty_state())

    if not state.available:
        st.warning(state.reason)
        return
    left, right = st.columns([2, 3])
    with left:
        st.subheader("Last materialization per stage")
        st.table(
            pd.DataFrame(
                [
                    {
                        "asset": key,
                        "materialized (UTC)": when.strftime("%Y-%m-%d %H:%M:%S")
                        if when
                        else "never",
                        "age": _age(when, now),
                    }
                    for key, when in state.materialized.items()
                ]
            )
        )
    with right:
        st.subheader("Last check results")
        st.table(
            pd.DataFrame(
                [
                    {
                        "asset": c["asset"],
                        "check": c["check"],
                        "result": c["status"],
                        "when": _age(c["time"], now) if c["time"] else "",
                        "detail": c["description"][:80],
                    }
                    for c in state.checks
                ]
            )
        )


# --- page ---------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="sales-cdc dashboard", page_icon=":bar_chart:", layout="wide")
    data = _data()
    st.title("Sales dashboard")
    st.caption(
        f"Live from the lake ({data.settings.env}: "
        + ("DuckDB over the embedded emulator" if data.settings.is_local else "Athena")
        + f"), refreshed every {REFRESH_SECONDS} s. Money is shown per currency, never added up "
        "across currencies. Days are UTC order days."
    )
    today = _today()
    with st.sidebar:
        st.header("Filters")
        picked = st.date_input(
            "Order days",
            value=(today - dt.timedelta(days=DEFAULT_DAYS - 1), today),
            max_value=today + dt.timedelta(days=1),
            key="days",
        )
        # The options as of this full run; live() reruns the app when new currencies appear.
        st.session_state["currency_options"] = _currencies(data, today)
        st.multiselect(
            "Currencies (none chosen: all)",
            options=st.session_state["currency_options"],
            key="currencies",
        )
    start, end = (picked[0], picked[-1]) if isinstance(picked, tuple | list) else (picked, picked)
    live(start, end)


def _currencies(data: DashboardData, today: dt.date) -> list[str]:
    params = {"start_date": "2000-01-01", "end_date": str(today + dt.timedelta(days=1))}
    answer = data.run("dashboard_currencies", params)
    return [] if answer.empty else list(answer.frame["currency"])


@st.fragment(run_every=REFRESH_SECONDS)
def live(start: dt.date, end: dt.date) -> None:
    data = _data()
    tables = data.tables()
    params = {"start_date": str(start), "end_date": str(end)}
    known = [] if "daily_sales_by_category" not in tables else _currencies(data, _today())
    if known != st.session_state.get("currency_options"):
        st.rerun(scope="app")  # a currency appeared: offer it in the filter
    currencies = st.session_state.get("currencies") or known
    if not currencies:
        st.info(what_to_run("daily_sales_by_category"), icon=":material/hourglass_empty:")
        params["currencies"] = ["-"]
    else:
        params["currencies"] = currencies
    st.caption(
        f"Updated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC · order days {start} to {end}"
    )
    sales_performance(data, params, tables)
    order_funnel(data, params, tables)
    products(data, params, tables)
    customers(data, params, tables)
    pipeline_health(data, tables)


main()
