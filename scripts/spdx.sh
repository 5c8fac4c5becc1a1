#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Adds the SPDX line to every tracked source file that lacks one: Go code
# and scripts are Apache-2.0, BPF C code is GPL-2.0-only OR BSD-2-Clause.
# Generated files (bpf2go's) are left alone: their source carries the line.
# license_test.go is the check CI runs; this script is the fix it names.
set -euo pipefail
cd "$(dirname "$0")/.."

go_line='// SPDX-License-Identifier: Apache-2.0'
c_line='// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)'
sh_line='# SPDX-License-Identifier: Apache-2.0'

# insert FILE LINE BLANK: LINE goes first (after a #! line), followed by
# an empty line when BLANK is 1 (a Go comment touching the package clause
# would become the package's documentation).
insert() {
	local file=$1 line=$2 blank=$3 tmp
	tmp=$(mktemp)
	awk -v line="$line" -v blank="$blank" '
		NR == 1 && /^#!/ { print; print line; next }
		NR == 1 { print line; if (blank == 1) print "" }
		{ print }' "$file" >"$tmp"
	cat "$tmp" >"$file"
	rm -f "$tmp"
	echo "added: $file"
}

git ls-files | while read -r f; do
	case $f in
	*/testdata/fuzz/*) continue ;;
	*.go) line=$go_line blank=1 ;;
	*.c | *.h) line=$c_line blank=0 ;;
	*.sh | *.bpfsh | .ci/run | Makefile | Vagrantfile) line=$sh_line blank=0 ;;
	*) continue ;;
	esac
	head -1 "$f" | grep -q 'Code generated .* DO NOT EDIT' && continue
	head -5 "$f" | grep -q 'SPDX-License-Identifier:' && continue
	insert "$f" "$line" "$blank"
done
