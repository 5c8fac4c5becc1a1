// SPDX-License-Identifier: Apache-2.0

package emu

type debugInfo struct{}
