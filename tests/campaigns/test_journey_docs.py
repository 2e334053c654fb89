"""The worked journeys of docs/CAMPAIGNS.md are valid campaigns as written, and walk as the guide says."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db
GUIDE = Path(settings.BASE_DIR) / "docs" / "CAMPAIGNS.md"


def worked_journeys() -> list[dict]:
    text = GUIDE.read_text()
    section = text[text.index("### Three worked journeys") :]
    section = section[: section.index("\n## ")]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]


def test_the_guide_has_three_worked_journeys():
    assert [journey["name"] for journey in worked_journeys()] == ["Abandoned cart series", "Win back", "Birthday"]


@pytest.mark.parametrize("journey", worked_journeys(), ids=lambda journey: journey["name"])
def test_each_worked_journey_is_accepted_as_written(api, journey):
    response = api.post("/api/v1/campaigns", journey, format="json")
    assert response.status_code == 201, response.content
    assert [step["key"] for step in response.json()["steps"]] == [step["key"] for step in journey["steps"]]
