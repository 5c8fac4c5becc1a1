// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bpfsh/bpfsh/tutorials"
)

// LabsEnv names a folder of lessons to use instead of those built into
// bpfsh: a lesson author tries an edited lesson without rebuilding, and
// tests use lessons of their own.
const LabsEnv = "BPFSH_LABS"

// labLessons are the lessons the lab commands offer.
func labLessons() ([]*tutorials.Lesson, error) {
	if dir := os.Getenv(LabsEnv); dir != "" {
		ls, err := tutorials.Load(os.DirFS(dir))
		if err != nil {
			return nil, fmt.Errorf("lessons in %s (%s): %w", dir, LabsEnv, err)
		}
		return ls, nil
	}
	ls, err := tutorials.Lessons()
	if err != nil {
		return nil, fmt.Errorf("the built-in lessons: %w", err)
	}
	return ls, nil
}

// findLesson is the lesson arg names: its number (1, 01), its folder
// (01-hello) or its topic (hello).
func findLesson(lessons []*tutorials.Lesson, arg string) (*tutorials.Lesson, error) {
	n, numErr := strconv.Atoi(arg)
	for _, l := range lessons {
		_, topic, _ := strings.Cut(l.Dir, "-")
		if numErr == nil && l.Number == n || arg == l.Dir || arg == topic {
			return l, nil
		}
	}
	if len(lessons) == 0 {
		return nil, fmt.Errorf("no lesson %s: this bpfsh has no lessons", arg)
	}
	return nil, Usagef("no lesson %q; the lessons are %d to %d ('lab list' shows them)", arg, lessons[0].Number, lessons[len(lessons)-1].Number)
}

// labsDir is where the lab commands keep progress and the lessons'
// working directories: <state>/labs.
func labsDir(s *Session) string { return filepath.Join(s.StateDir, "labs") }

// workDir is lesson l's working directory: <state>/labs/NN-topic.
func workDir(s *Session, l *tutorials.Lesson) string { return filepath.Join(labsDir(s), l.Dir) }

// labMeta are a lesson's own files, which stay out of its working
// directory: the learner follows the README, not the solution.
var labMeta = map[string]bool{"lesson.bpfsh": true, "check.bpfsh": true, "solution.bpfsh": true}

// copyLesson writes the lesson's files (READMEs, objects, C sources,
// scripts) into dir, replacing older copies and leaving the learner's own
// files alone.
func copyLesson(l *tutorials.Lesson, dir string) error {
	for _, p := range l.Borrowed {
		b, err := fs.ReadFile(l.Root, p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, path.Base(p)), b, 0o644); err != nil {
			return err
		}
	}
	return fs.WalkDir(l.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		to := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if labMeta[p] {
			return nil
		}
		b, err := fs.ReadFile(l.Files, p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}

// labLangArgs is the --lang LANG every lab command takes.
var labLangArgs = argSpec{Valued: []string{"--lang"}, Need: map[string]string{"--lang": "a language: en or zh-CN"}}

// labLang is the language the lab commands speak: --lang LANG among
// args (which it removes), else the locale (LC_ALL, LC_MESSAGES, LANG).
func labLang(args []string) (lang string, rest []string, err error) {
	rest, err = labLangArgs.parse(args, func(_ string, v ...string) error {
		lang = v[0]
		if lang != "en" && !tutorials.IsChinese(lang) {
			return Usagef("--lang %s: the lessons are in en and zh-CN", lang)
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	if lang == "" {
		for _, v := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
			if lang = os.Getenv(v); lang != "" {
				break
			}
		}
	}
	if !tutorials.IsChinese(lang) {
		lang = "en"
	}
	return lang, rest, nil
}

// tr is en, or zh when lang is Chinese.
func tr(lang, en, zh string) string {
	if tutorials.IsChinese(lang) {
		return zh
	}
	return en
}

// missingPackages are the Debian packages of needs that are not
// installed, as dpkg knows them. A need that is also a command on PATH is
// there: Ubuntu's bpftool comes from linux-tools, not a bpftool package.
// Without dpkg (not Debian or Ubuntu) it cannot tell, and says so.
func missingPackages(needs []string) ([]string, error) {
	var unknown []string
	for _, p := range needs {
		if _, err := exec.LookPath(p); err != nil {
			unknown = append(unknown, p)
		}
	}
	if len(unknown) == 0 {
		return nil, nil
	}
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		return nil, errors.New("dpkg-query is not here (not Debian or Ubuntu), so whether they are installed cannot be told")
	}
	var missing []string
	for _, p := range unknown {
		out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", p).Output()
		if err != nil || strings.TrimSpace(string(out)) != "installed" {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// aptLine is the command that installs pkgs.
func aptLine(pkgs []string) string {
	return "sudo apt-get install -y " + strings.Join(pkgs, " ")
}
