#!/usr/bin/env bash
echo "make run: the demo is not written yet" >&2
exit 1
