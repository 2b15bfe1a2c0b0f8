"""Build the bundled trivia set (know_thyself/data/trivia/{train,validation}.jsonl) from its sources.

Usage: python tools/build_bundled_trivia.py

The sources in datasets_src/trivia/*.jsonl hold one question a line: question, answer,
aliases, topic, difficulty. This script assigns stable ids, fills ``normalized_aliases`` with
the project's own normalisation, and splits each (topic, difficulty) stratum the same way on
every run: a question's split depends only on a hash of its normalised text.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from know_thyself.data.grading import normalize_answer

SOURCES = ROOT / "datasets_src" / "trivia"
TARGET = ROOT / "know_thyself" / "data" / "trivia"
VALIDATION_EVERY = (0, 6)  # ranks (mod 13) that go to validation: about 2 questions in 13


def _digest(text: str) -> str:
    return hashlib.sha1(normalize_answer(text).encode()).hexdigest()


def build(target_dir: Path = TARGET, sources_dir: Path = SOURCES) -> dict[str, int]:
    """Write ``train.jsonl`` and ``validation.jsonl`` into ``target_dir`` from ``sources_dir``.

    The output depends only on the sources, so building twice gives byte-identical files.

    Returns:
        The number of questions written to each split.
    """
    target_dir = Path(target_dir)
    rows, seen = [], {}
    for source in sorted(Path(sources_dir).glob("*.jsonl")):
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            key = normalize_answer(row["question"])
            if key in seen:
                print(f"skipping duplicate {source.name}:{number} (first in {seen[key]})")
                continue
            seen[key] = f"{source.name}:{number}"
            rows.append(row)
    strata: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        strata[(row["topic"], row["difficulty"])].append(row)
    splits: dict[str, list[dict]] = {"train": [], "validation": []}
    for (topic, _), members in sorted(strata.items()):
        members.sort(key=lambda r: _digest(r["question"]))
        for rank, row in enumerate(members):
            split = "validation" if rank % 13 in VALIDATION_EVERY else "train"
            aliases = list(dict.fromkeys(a.strip() for a in row["aliases"] if a.strip()))
            normalized = list(dict.fromkeys(n for n in (normalize_answer(a) for a in aliases) if n))
            splits[split].append(
                {
                    "question_id": f"kt-{topic[:3]}-{_digest(row['question'])[:10]}",
                    "question": row["question"].strip(),
                    "answer": {"value": row["answer"].strip(), "aliases": aliases, "normalized_aliases": normalized},
                    "topic": topic,
                    "difficulty": row["difficulty"],
                }
            )
    target_dir.mkdir(parents=True, exist_ok=True)
    for split, records in splits.items():
        records.sort(key=lambda r: r["question_id"])
        with open(target_dir / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        print(f"{split}: {len(records)} questions")
    return {split: len(records) for split, records in splits.items()}


def main() -> None:
    build(TARGET)


if __name__ == "__main__":
    main()
