#!/usr/bin/env python3
"""Parses a Prometheus text exposition from stdin with prometheus_client's parser (the
reference implementation) and prints every sample as JSON lines:
{"name": ..., "labels": {...}, "value": ...}, after one line {"families": [[name, type]...]}.
Exits 1 with the parser's error on stderr if the text does not parse."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # noqa: BLE001 - any parse error fails the test
    print(f"parse error: {e!r}", file=sys.stderr)
    sys.exit(1)
print(json.dumps({"families": [[f.name, f.type] for f in families]}))
for f in families:
    for s in f.samples:
        print(json.dumps({"name": s.name, "labels": s.labels, "value": s.value}))
