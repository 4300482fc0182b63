#!/usr/bin/env bash
# Writes a man page (roff) for one of the commands from its own --help, so the page says exactly
# what the command says: the help text under DESCRIPTION, verbatim.
#
# Usage: Scripts/package/man-page.sh BINARY SECTION SUMMARY > NAME.SECTION
# (swift-argument-parser's generate-manual plugin covers ArgumentParser commands only; ipvsctl
# parses ipvsadm's command line itself, so both pages are made here, the same way.)
set -euo pipefail

if [ $# -ne 3 ]; then
  grep '^# Usage:' "$0" | sed 's/^# //' >&2
  exit 2
fi
binary=$1 section=$2 summary=$3
name=$(basename "$binary")
version=$("$binary" --version | tail -n 1)
help=$("$binary" --help)

# roff: a backslash is written \e; a line starting with . or ' is protected with \&.
escape() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

cat <<PAGE
.TH $(echo "$name" | tr '[:lower:]' '[:upper:]') $section "" "$version" "System Administration"
.SH NAME
$name \\- $(printf '%s' "$summary" | escape)
.SH DESCRIPTION
The text below is
.B $name \\-\\-help
of this version.
.PP
.nf
$(printf '%s\n' "$help" | escape)
.fi
.SH SEE ALSO
.BR ipvs-agent (8),
.BR ipvsctl (8),
.BR ipvsadm (8)
PAGE
