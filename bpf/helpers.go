// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// helperReleases maps helper ids to the Linux release that brought them.
// Helper ids (enum bpf_func_id in linux/bpf.h) are handed out in the order
// helpers are merged and never reused, so one entry per release, naming
// the first id it added, covers them all: a helper came with the last
// release whose first id is not above its own. The releases are those in
// which each boundary helper's commit first appeared. Helpers stopped
// growing at 211 (6.2): newer kernels add kfuncs instead.
var helperReleases = []struct {
	first   asm.BuiltinFunc
	release string
}{
	{asm.FnMapLookupElem, "3.19"},
	{asm.FnProbeRead, "4.1"},
	{asm.FnTailCall, "4.2"},
	{asm.FnGetCgroupClassid, "4.3"},
	{asm.FnRedirect, "4.4"},
	{asm.FnSkbLoadBytes, "4.5"},
	{asm.FnGetStackid, "4.6"},
	{asm.FnSkbChangeProto, "4.8"},
	{asm.FnCurrentTaskUnderCgroup, "4.9"},
	{asm.FnGetNumaNodeId, "4.10"},
	{asm.FnProbeReadStr, "4.11"},
	{asm.FnGetSocketCookie, "4.12"},
	{asm.FnSetHash, "4.13"},
	{asm.FnRedirectMap, "4.14"},
	{asm.FnXdpAdjustMeta, "4.15"},
	{asm.FnOverrideReturn, "4.16"},
	{asm.FnMsgRedirectMap, "4.17"},
	{asm.FnXdpAdjustTail, "4.18"},
	{asm.FnGetLocalStorage, "4.19"},
	{asm.FnSkLookupTcp, "4.20"},
	{asm.FnMsgPopData, "5.0"},
	{asm.FnSpinLock, "5.1"},
	{asm.FnSkcLookupTcp, "5.2"},
	{asm.FnSendSignal, "5.3"},
	{asm.FnSkbOutput, "5.5"},
	{asm.FnReadBranchRecords, "5.6"},
	{asm.FnGetNetnsCookie, "5.7"},
	{asm.FnKtimeGetBootNs, "5.8"},
	{asm.FnSkcToTcp6Sock, "5.9"},
	{asm.FnLoadHdrOpt, "5.10"},
	{asm.FnTaskStorageGet, "5.11"},
	{asm.FnCheckMtu, "5.12"},
	{asm.FnForEachMapElem, "5.13"},
	{asm.FnSysBpf, "5.14"},
	{asm.FnTimerInit, "5.15"},
	{asm.FnGetBranchSnapshot, "5.16"},
	{asm.FnFindVma, "5.17"},
	{asm.FnGetRetval, "5.18"},
	{asm.FnKptrXchg, "5.19"},
	{asm.FnTcpRawGenSyncookieIpv4, "6.0"},
	{asm.FnKtimeGetTaiNs, "6.1"},
	{asm.FnCgrpStorageGet, "6.2"},
}

// lastHelper is the highest helper id there will ever be.
const lastHelper = asm.FnCgrpStorageDelete

// HelperRelease is the Linux release that brought helper id ("4.15" for
// bpf_xdp_adjust_meta), or "" for an id no release has.
func HelperRelease(id asm.BuiltinFunc) string {
	if id <= asm.FnUnspec || id > lastHelper {
		return ""
	}
	release := ""
	for _, r := range helperReleases {
		if r.first > id {
			break
		}
		release = r.release
	}
	return release
}

// HelperName is the name C code calls helper id by ("bpf_xdp_adjust_meta"),
// from cilium/ebpf's Go name for it (FnXdpAdjustMeta); "helper #N" for an
// id it does not know.
func HelperName(id asm.BuiltinFunc) string {
	goName := id.String()
	rest, ok := strings.CutPrefix(goName, "Fn")
	if !ok || rest == "" || strings.HasPrefix(rest, "(") || strings.HasPrefix(goName, "BuiltinFunc") {
		return fmt.Sprintf("helper #%d", int32(id))
	}
	var b strings.Builder
	b.WriteString("bpf")
	for _, r := range rest {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Helper refusals in verifier logs. Since 5.x the verifier says "program
// of this type cannot use helper NAME#ID" for a helper the program type may
// not call, and "invalid func unknown#ID" for an id it does not know; older
// kernels said "unknown func NAME#ID" for both.
var (
	helperRefused = regexp.MustCompile(`(?:program of this type cannot use helper|unknown func) (\w+)#(\d+)`)
	helperUnknown = regexp.MustCompile(`invalid func unknown#(\d+)`)
)

// explainHelperRefusal says, for a verifier reason that refuses a helper,
// which helper it is and which release brought it; "" for any other
// reason. progType is the refused program's type.
func explainHelperRefusal(reason string, progType ebpf.ProgramType) string {
	release := runningRelease()
	if m := helperUnknown.FindStringSubmatch(reason); m != nil {
		id, _ := strconv.Atoi(m[1])
		fn := asm.BuiltinFunc(id)
		since := HelperRelease(fn)
		if since == "" {
			return fmt.Sprintf("no Linux release has a helper #%d: the object is corrupt or was built for another kernel", id)
		}
		return fmt.Sprintf("this kernel (Linux %s) does not know %s, which came in Linux %s: run it on Linux %s or newer", release, HelperName(fn), since, since)
	}
	if m := helperRefused.FindStringSubmatch(reason); m != nil {
		id, _ := strconv.Atoi(m[2])
		return MissingHelper(progType, asm.BuiltinFunc(id))
	}
	return ""
}

// MissingHelper says that this kernel does not let programs of type pt
// call helper fn, and since when mainline has the helper.
func MissingHelper(pt ebpf.ProgramType, fn asm.BuiltinFunc) string {
	since := HelperRelease(fn)
	if since == "" {
		return fmt.Sprintf("this kernel (Linux %s) does not let %s programs call %s", runningRelease(), ProgTypeName(uint32(pt)), HelperName(fn))
	}
	return fmt.Sprintf("this kernel (Linux %s) does not let %s programs call %s, a helper since Linux %s: not every program type may call every helper, and kernel builds differ ('bpftool feature probe' lists what this one offers)",
		runningRelease(), ProgTypeName(uint32(pt)), HelperName(fn), since)
}

// runningRelease is uname -r, or "?" when it cannot be read.
func runningRelease() string {
	rel, err := KernelRelease()
	if err != nil {
		return "?"
	}
	return rel
}
