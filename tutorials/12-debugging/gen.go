// SPDX-License-Identifier: Apache-2.0

// Package debugging is lesson 12 of the labs: pong.bpf.c, a small XDP
// program with a deliberate bug, and pong_fixed.bpf.c, its fix. The
// compiled objects are committed so that the lesson needs no clang; this
// file only lets 'go generate ./...' (and scripts/check-objects.sh) rebuild
// them.
package debugging

//go:generate sh build.sh
