"""The original class as users make and subclass it: shared by the generation, settings and original-API tests."""

from __future__ import annotations

from producer import ECommerceEventProducer, default_settings

NOW_MS = 1_705_314_645_123  # 2024-01-15T10:30:45.123Z


def make_producer(**overrides) -> ECommerceEventProducer:
    return ECommerceEventProducer(default_settings(**overrides))


def events(n: int, seed: int = 7, **overrides) -> list[dict]:
    p = make_producer(seed=seed, **overrides)
    return [p.generate_event(NOW_MS + i) for i in range(n)]


class SearchingProducer(ECommerceEventProducer):
    """The documented customisation: a new event type and extra metadata."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.event_types = self.event_types + ["search"]
        self.event_weights = self.event_weights + [0.5]

    def _generate_metadata(self, event_type):
        return {"device": "mobile", "query": "red shoes"} if event_type == "search" else {"device": "desktop"}


class BooksProducer(ECommerceEventProducer):
    """The original README's way: _generate_metadata(self) returns the whole metadata."""

    def _generate_metadata(self):
        metadata = super()._generate_metadata()
        metadata["category"] = "books"
        return metadata


class CampaignProducer(ECommerceEventProducer):
    """Today's way: _generate_metadata(self, event_type) returns extra fields."""

    def _generate_metadata(self, event_type):
        return {"campaign": "winter"} if event_type == "checkout" else {}


def books(event: dict) -> bool:
    return event["metadata"]["category"] == "books" and set(event["metadata"]) == {"product_id", "session_length",
                                                                                    "category"}


def campaign(event: dict) -> bool:
    return (event["metadata"].get("campaign") == "winter") == (event["event_type"] == "checkout")
