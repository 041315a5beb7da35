"""Argument and result types: scalars, an enum, and a pydantic model serialized by pydantic."""

import enum
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, Field, field_serializer

from fraiseql_fastapi import JSON, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry

registry = SubscriptionRegistry()


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


class Trade(BaseModel):
    id: UUID
    symbol: str
    side: Side
    price: Decimal
    executed_at: datetime = Field(serialization_alias="time")
    venue: JSON

    @field_serializer("symbol")
    def upper_case(self, symbol: str) -> str:
        return symbol.upper()


@subscription(channel="trades:{symbol}", registry=registry)
def trade_executed(event, symbol: str, sides: list[Side] | None = None) -> Trade | None:
    """Trades of a symbol; of some sides only, when given."""
    # event.data is the published trade as JSON: its enum is the member's name.
    trade = Trade(**{**event.data, "side": Side[event.data["side"]]})
    if sides is not None and trade.side not in sides:
        return None
    return trade


manager = SubscriptionManager(subscriptions=registry.fields)
