"""Check the hash chain of a klikit-admin audit log export offline (standard library only).

    python3 verify_audit_export.py EXPORT.csv

Exit 0 printing the number of events and the head when every event's hash matches its fields
and links to the one before; 1 naming the first bad sequence and the problem; 2 when the file
cannot be read. Seals are not checked: their key is not in the export. See docs/audit.md.
"""

import csv
import hashlib
import json
import sys


def cell(row, name):  # the export puts an apostrophe before cells a spreadsheet could run
    return row[name][1:] if row[name].startswith("'") else row[name]


TEXT = ("action", "actor", "occurred_at", "prev_hash", "request_id")
NUMBERS = ("actor_pk", "business_pk", "credential_pk", "sequence")  # empty: null


def hashed_fields(row):
    fields = {k: cell(row, k) for k in TEXT}
    fields.update({k: int(cell(row, k)) if cell(row, k) else None for k in NUMBERS})
    fields.update(
        source_ip=cell(row, "source_ip") or None, details=json.loads(cell(row, "details"))
    )
    return fields


def first_problem(rows):
    prev = None  # the previous event's hashed fields and hash
    for row in rows:
        sequence = int(cell(row, "sequence"))
        if prev and sequence == prev["sequence"]:
            return sequence, "duplicate"
        if prev and sequence != prev["sequence"] + 1:
            return prev["sequence"] + 1, "sequence gap"
        try:
            fields = hashed_fields(row)
        except ValueError:
            return sequence, "content changed"
        start = "0" * 64 if sequence == 1 else fields["prev_hash"]  # a date range starts mid-chain
        if fields["prev_hash"] != (prev["hash"] if prev else start):
            return sequence, "link broken"
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != cell(row, "hash"):
            return sequence, "content changed"
        if prev and fields["occurred_at"] < prev["occurred_at"]:
            return sequence, "time went back"
        prev = dict(fields, hash=cell(row, "hash"))


def main(path):
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, newline="", encoding="utf-8") as export:
            rows = sorted(csv.DictReader(export), key=lambda row: int(cell(row, "sequence")))
    except (OSError, KeyError, ValueError, csv.Error) as exc:
        print(f"cannot read {path}: {exc!r}", file=sys.stderr)
        return 2
    problem = first_problem(rows)
    if problem:
        print(f"FAILED at sequence {problem[0]}: {problem[1]}")
        return 1
    span = f", sequences {cell(rows[0], 'sequence')}-{cell(rows[-1], 'sequence')}" if rows else ""
    print(f"OK: {len(rows)} events{span}" + (f", head {cell(rows[-1], 'hash')}" if rows else ""))
    return 0


if __name__ == "__main__":
    sys.exit(
        main(sys.argv[1]) if len(sys.argv) == 2 else "usage: verify_audit_export.py EXPORT.csv"
    )
