# SPDX-License-Identifier: Apache-2.0
# make        build bpfsh
# make test   install what the tests need (Debian packages), mount bpffs and
#             tracefs, check the committed BPF objects, vet, run every test
#             against the real kernel as root, and fuzz for FUZZTIME each
# make test-kernels  run the tests inside Debian's kernels under qemu (the
#             kernel matrix: scripts/kernels.list, scripts/kernels.sh)
# make generate  rebuild the BPF objects from their C sources (needs clang)

.PHONY: build test test-kernels generate

build:
	go build -o bpfsh .

test:
	scripts/test.sh

test-kernels:
	scripts/kernels.sh

generate:
	go generate ./...
