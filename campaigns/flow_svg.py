"""A journey drawn as a flow (SPEC §4.1), server-side, as inline SVG: no script, no library.

The steps are boxes top to bottom in their order, each with its kind, key, what it does and its
counts from ``selectors.campaign_steps_report`` (entered, waiting, sent, exited by the goal), and a
star on a message step whose A/B winner was picked. Arrows:

- the next step: straight down (a split's branch to the next step too, labelled yes / no);
- a split's branch to another step: out of the box's side, along its own lane, into the target's
  side — ``yes`` on the right, ``no`` on the left;
- ``exit``: an end node beside the split; running past the last step: a "Completed" end node.

Every text is escaped; the colours are presentation attributes the admin's stylesheet may override.
"""

from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from campaigns.journey import EXIT, Journey, Step

BOX_WIDTH = 320
LINE = 17  # px per text line
PADDING = 10
GAP = 48  # between two boxes: room for the arrow and its label
LANE_FIRST, LANE_STEP = 24, 18
PILL_WIDTH, PILL_HEIGHT = 84, 26
MARGIN = 12
SUMMARY_CHARACTERS = 44
EXIT_ARROW = 44  # px from a split's side (or its outermost lane) to its Exit node
KIND_COLOURS = {"message": "#447e9b", "wait": "#8a8a8a", "split": "#c58a1a", "tag": "#3f8f5a"}
CONDITION_WORDS = {
    "purchased_since_entry": "purchased since entering?",
    "clicked_previous": "clicked the previous message?",
    "opened_previous": "opened the previous message?",
}


def _short(text: str, limit: int = SUMMARY_CHARACTERS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _duration(minutes: int) -> str:
    for size, unit in ((1440, "day"), (60, "hour")):
        if minutes % size == 0:
            number = minutes // size
            return f"{number} {unit}{'s' if number != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def step_summary(step: Step) -> str:
    """What the step does, in a few words: "email: We miss you", "wait 3 days", "has tag vip?"."""
    if step.type == "message":
        text = step.subject or step.body or (step.variants[0].subject if step.variants else "")
        offer = step.offer
        extra = ""
        if offer.get("bonus_points"):
            extra = f" (+{offer['bonus_points']} points)"
        elif offer.get("discount_percent"):
            extra = f" ({offer['discount_percent']}% off)"
        return f"{step.channel}: {text}{extra}"
    if step.type == "wait":
        if step.until is not None:
            return f"wait until {step.until:%H:%M}, customer's time"
        return f"wait {_duration(step.minutes or 0)}"
    if step.type == "split":
        if step.condition in CONDITION_WORDS:
            return CONDITION_WORDS[step.condition]
        if step.condition == "tier":
            return f"tier in {', '.join(step.condition_value)}?"
        if step.condition == "min_total_spent":
            return f"spent at least {step.condition_value}?"
        return f"has tag {step.condition_value}?"
    changes = [f"add {', '.join(step.add)}"] if step.add else []
    if step.remove:
        changes.append(f"remove {', '.join(step.remove)}")
    return "tags: " + "; ".join(changes)


def count_line(step: Step, row: dict[str, Any]) -> str:
    parts = [f"entered {row.get('entered', 0):,}", f"waiting {row.get('waiting', 0):,}"]
    if step.type == "message":
        parts.append(f"sent {row.get('sent', 0):,}")
    parts.append(f"exited {row.get('exited', 0):,}")
    return " · ".join(parts)


def variant_line(row: dict[str, Any], winner: str | None) -> str:
    shown = []
    for variant in row.get("variants") or []:
        mark = " ★" if variant["key"] == winner else ""
        shown.append(f"{variant['key']}{mark}: sent {variant.get('sent', 0):,}")
    return " · ".join(shown)


@dataclass
class Box:
    step: Step
    lines: list[tuple[str, str]]  # (css class, text), under the title line (number, kind, key)
    winner: str | None
    title: str
    y: int = 0

    @property
    def height(self) -> int:
        return PADDING * 2 + LINE * (1 + len(self.lines))


@dataclass(frozen=True)
class Edge:
    source: int  # box index
    target: int | str  # box index, EXIT, or "completed"
    label: str
    side: str  # "down", "right" (yes) or "left" (no)


def _boxes(journey: Journey, report: list[dict[str, Any]], winners: dict[str, Any]) -> list[Box]:
    rows = {row["key"]: row for row in report}
    boxes = []
    for step in journey.steps:
        row = rows.get(step.key, {})
        winner = (winners.get(step.key) or {}).get("variant")
        lines = [("flow-summary", _short(step_summary(step))), ("flow-counts", count_line(step, row))]
        if step.variants:
            lines.append(("flow-variants", _short(variant_line(row, winner), 52)))
        full = f"{step.type} {step.key}: {step_summary(step)}"
        boxes.append(Box(step=step, lines=lines, winner=winner, title=full))
    return boxes


def _edges(journey: Journey) -> list[Edge]:
    edges: list[Edge] = []
    for position, step in enumerate(journey.steps):
        following = journey.following(step.key)
        if step.type != "split":
            target: int | str = position + 1 if following else "completed"
            edges.append(Edge(position, target, "", "down"))
            continue
        down = [name for name, key in (("yes", step.yes), ("no", step.no)) if key == following]
        if down:
            edges.append(Edge(position, position + 1, " / ".join(down), "down"))
        for name, key, side in (("yes", step.yes, "right"), ("no", step.no, "left")):
            if key == following:
                continue
            edges.append(Edge(position, EXIT if key == EXIT else journey.index(key), name, side))
    return edges


def _text(x: float, y: float, text: str, css: str, **attributes: Any) -> str:
    extra = "".join(f' {name.replace("_", "-")}="{escape(value)}"' for name, value in attributes.items())
    return f'<text x="{x:g}" y="{y:g}" class="{css}"{extra}>{escape(text)}</text>'


def _pill(x: float, y: float, text: str, css: str) -> str:
    return (
        f'<g class="flow-end {css}"><rect x="{x:g}" y="{y:g}" width="{PILL_WIDTH}" height="{PILL_HEIGHT}" '
        f'rx="{PILL_HEIGHT / 2:g}" fill="#f4f4f4" stroke="#999"/>'
        + _text(x + PILL_WIDTH / 2, y + PILL_HEIGHT / 2 + 4, text, "flow-end-label", text_anchor="middle")
        + "</g>"
    )


def _box_svg(box: Box, x: float, number: int) -> str:
    step = box.step
    colour = KIND_COLOURS.get(step.type, "#888")
    parts = [
        f'<g class="flow-step flow-{step.type}" data-step="{escape(step.key)}">',
        f"<title>{escape(box.title)}</title>",
        f'<rect x="{x:g}" y="{box.y}" width="{BOX_WIDTH}" height="{box.height}" rx="6" '
        f'fill="#ffffff" stroke="#bbbbbb" class="flow-box"/>',
        f'<rect x="{x:g}" y="{box.y}" width="6" height="{box.height}" rx="3" fill="{colour}" class="flow-kind-bar"/>',
    ]
    top = box.y + PADDING + 12
    # One text, two runs: the key follows the kind whatever the font's widths.
    parts.append(
        f'<text x="{x + 16:g}" y="{top}" class="flow-title">'
        f'<tspan class="flow-kind" fill="{colour}">{number}. {escape(step.type.upper())}</tspan>'
        f'<tspan class="flow-key" dx="8">{escape(step.key)}</tspan></text>'
    )
    if box.winner:
        parts.append(_text(x + BOX_WIDTH - 10, top, f"★ winner {box.winner}", "flow-winner", text_anchor="end"))
    for line, (css, text) in enumerate(box.lines, start=1):
        parts.append(_text(x + 16, top + LINE * line, text, css))
    parts.append("</g>")
    return "".join(parts)


def journey_flow_svg(
    *, journey: Journey, report: list[dict[str, Any]], winners: dict[str, Any] | None = None
) -> SafeString:
    """The journey as an SVG flow with each step's counts (see the module's docstring)."""
    boxes = _boxes(journey, report, winners or {})
    edges = _edges(journey)
    lanes = {"left": [e for e in edges if e.side == "left" and e.target != EXIT]}
    lanes["right"] = [e for e in edges if e.side == "right" and e.target != EXIT]
    exits = {side: any(e.side == side and e.target == EXIT for e in edges) for side in ("left", "right")}

    def extent(side: str) -> int:
        lane_room = LANE_FIRST + LANE_STEP * len(lanes[side]) if lanes[side] else 0
        return lane_room + (PILL_WIDTH + EXIT_ARROW + 4 if exits[side] else 0)

    left = MARGIN + max(extent("left"), 8)
    right_edge = left + BOX_WIDTH
    y = MARGIN
    for box in boxes:
        box.y = y
        y += box.height + GAP
    completed = any(e.target == "completed" for e in edges)
    height = y + (PILL_HEIGHT if completed else -GAP) + MARGIN
    width = right_edge + max(extent("right"), 8) + MARGIN
    centre = left + BOX_WIDTH / 2

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="journey-flow-svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="journey-flow-title" '
        f'font-family="sans-serif" font-size="12">',
        f'<title id="journey-flow-title">{escape(_flow_title(journey))}</title>',
        '<defs><marker id="journey-flow-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker></defs>',
    ]
    incoming: dict[tuple[int, str], int] = {}
    lane_number = {"left": 0, "right": 0}
    for edge in edges:
        source = boxes[edge.source]
        bottom = source.y + source.height
        if edge.side == "down":
            end = boxes[edge.target].y if isinstance(edge.target, int) else bottom + GAP
            parts.append(_line(f"M{centre:g},{bottom} V{end - 1}", "flow-next"))
            if edge.label:
                parts.append(_text(centre + 6, bottom + GAP / 2 + 4, edge.label, "flow-branch-label"))
            continue
        sign = 1 if edge.side == "right" else -1
        start_x = right_edge if sign > 0 else left
        out_y = source.y + source.height / 2 + 6
        label_x = start_x + sign * 6
        parts.append(
            _text(label_x, out_y - 5, edge.label, "flow-branch-label", text_anchor="start" if sign > 0 else "end")
        )
        if edge.target == EXIT:
            lane_room = LANE_FIRST + LANE_STEP * len(lanes[edge.side]) if lanes[edge.side] else 0
            pill_x = start_x + sign * (lane_room + EXIT_ARROW) - (PILL_WIDTH if sign < 0 else 0)
            pill_near = pill_x if sign > 0 else pill_x + PILL_WIDTH
            parts.append(_line(f"M{start_x:g},{out_y:g} H{pill_near - sign:g}", "flow-exit"))
            parts.append(_pill(pill_x, out_y - PILL_HEIGHT / 2, "Exit", "flow-exit-node"))
            continue
        target = boxes[int(edge.target)]
        lane_x = start_x + sign * (LANE_FIRST + LANE_STEP * lane_number[edge.side])
        lane_number[edge.side] += 1
        already = incoming.get((int(edge.target), edge.side), 0)
        incoming[(int(edge.target), edge.side)] = already + 1
        in_y = target.y + 14 + 9 * already
        path = f"M{start_x:g},{out_y:g} H{lane_x:g} V{in_y:g} H{start_x + sign:g}"
        parts.append(_line(path, f"flow-branch flow-branch-{edge.label}"))
    for number, box in enumerate(boxes, start=1):
        parts.append(_box_svg(box, left, number))
    if completed:
        parts.append(_pill(centre - PILL_WIDTH / 2, height - MARGIN - PILL_HEIGHT, "Completed", "flow-done-node"))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # built here from escaped texts only


def _line(path: str, css: str) -> str:
    return (
        f'<path d="{path}" class="flow-arrow {css}" fill="none" stroke="#666" stroke-width="1.5" '
        f'marker-end="url(#journey-flow-arrow)"/>'
    )


def _flow_title(journey: Journey) -> str:
    return "Journey: " + " → ".join(f"{step.key} ({step.type})" for step in journey.steps)
