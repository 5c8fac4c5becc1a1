package commands

// kvCmd stands in for the kv family that commands/kv.go defines on its
// own branch, so that this branch compiles; delete this file at merge.
var kvCmd = &Command{Name: "kv", Short: "the in-kernel transactional key-value store", Subs: []*Command{}}
