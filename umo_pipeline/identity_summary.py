"""The identity report's summary in one sentence of plain words: how many identities were kept,
which were confused (mutually or one way), weak, not found or had no face, and the extra faces."""

from __future__ import annotations

from umo_pipeline import matching


def summary(report) -> str:
    """`report` (analysis.IdentityReport) in one sentence, as the page, the CLI and the JSON give it."""
    n = len(report.labels)
    if n == 0:
        return "No references to compare."
    if not report.faces:
        return f"No face found in the output image; none of the {n} identities kept."
    by_status = {status: [] for status in (matching.WEAK, matching.NOT_FOUND, matching.NO_REFERENCE_FACE)}
    for label, status in zip(report.labels, report.statuses):
        if status in by_status:
            by_status[status].append(label)
    kept = report.statuses.count(matching.MATCHED)
    parts = [f"{kept} of {n} {'identity' if n == 1 else 'identities'} kept"]
    parts += confusion_phrases(report)
    if by_status[matching.WEAK]:
        parts.append(f"{join_names(by_status[matching.WEAK])} only weakly resembled")
    if by_status[matching.NOT_FOUND]:
        parts.append(f"{join_names(by_status[matching.NOT_FOUND])} not found")
    if by_status[matching.NO_REFERENCE_FACE]:
        parts.append(f"no face in {join_names(by_status[matching.NO_REFERENCE_FACE])}")
    extra = report.face_owners.count(None)
    if extra:
        parts.append(f"{extra} extra face{'s' if extra > 1 else ''} in the output")
    return "; ".join(parts) + "."


def confusion_phrases(report) -> list[str]:
    phrases, seen = [], set()
    for i, status in enumerate(report.statuses):
        if status != matching.CONFUSED:
            continue
        others = report.match.confused_with[i]
        if not others:
            phrases.append(f"{report.labels[i]} appears on two output faces")
            continue
        mutual = [k for k in others if i in report.match.confused_with[k]]
        for k in mutual:
            pair = tuple(sorted((i, k)))
            if pair not in seen:
                seen.add(pair)
                phrases.append(f"{report.labels[pair[0]]} and {report.labels[pair[1]]} were confused")
        one_way = [report.labels[k] for k in others if k not in mutual]
        if one_way:
            phrases.append(f"{report.labels[i]} was confused with {join_names(one_way)}")
    return phrases


def join_names(names: list[str]) -> str:
    """"A", "A and B", "A, B and C"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
