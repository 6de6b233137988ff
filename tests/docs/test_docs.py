#!/usr/bin/env python3
"""The guide in docs/ against the source tree and the committed results.

    python3 tests/docs/test_docs.py      (or ctest -R docs)

  * every code reference `path/file.c:function` in docs/*.md and
    docs/figures/*.md names a file that exists and defines that function
    (a definition: the name at the start of a line's declarator, followed by
    "(", on a line that is not a prototype);
  * every other backticked repository path (`models/async/main.c`,
    `bench/RESULTS.md`) exists;
  * every relative link and image in docs/*.md points to a file;
  * every fragment docs/figures/*.md names its results file, and it exists;
  * docs/figures/make.py --check: the docs say what the committed results say
    (and, on a copy of docs/, that it notices a number edited by hand).

The checker is tested on bad input too, so that a bogus reference fails.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DOCS = os.path.join(ROOT, "docs")
FIGS = os.path.join(DOCS, "figures")

CODE_REF = re.compile(r"`([\w./-]+\.(?:c|h|py)):(\w+)(?:\(\))?`")
PATH_REF = re.compile(r"`((?:common|models|bench|tests|docs)/[\w./-]+\.(?:c|h|py|md|sh|conf|json))`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s#]+)(?:#[^)]*)?\)")
SOURCE = re.compile(r"results: `([^`]+/results\.json)`")


def defines(path, name):
    """Does this C or Python file define `name`?"""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if path.endswith(".py"):
        return re.search(rf"^\s*def {name}\(", text, re.M) is not None
    # A C definition starts at the beginning of a line: return type and
    # qualifiers, the name, "(" — and the line does not end a prototype.
    for m in re.finditer(rf"^[A-Za-z_][\w \t*]*?\b{name}\s*\(([^;{{]*)$", text, re.M):
        line = m.group(0)
        if line.startswith(("return", "else", "if", "while", "for", "switch")):
            continue
        rest = text[m.end():m.end() + 400]
        # The first of ';' or '{' after the parameter list decides.
        brace, semi = rest.find("{"), rest.find(";")
        if line.rstrip().endswith("{") or (brace >= 0 and (semi < 0 or brace < semi)):
            return True
    return False


def check_text(text, where, root=ROOT):
    """The problems with one markdown file's references, as strings."""
    problems = []
    for m in CODE_REF.finditer(text):
        path, name = m.group(1), m.group(2)
        full = os.path.join(root, path)
        if not os.path.isfile(full):
            problems.append(f"{where}: `{path}:{name}`: no file {path}")
        elif not defines(full, name):
            problems.append(f"{where}: `{path}:{name}`: {path} defines no {name}()")
    for m in PATH_REF.finditer(text):
        if not os.path.exists(os.path.join(root, m.group(1))):
            problems.append(f"{where}: `{m.group(1)}`: no such file")
    return problems


def check_links(text, path):
    problems = []
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto:
        if not os.path.exists(os.path.normpath(os.path.join(os.path.dirname(path), target))):
            problems.append(f"{os.path.relpath(path, ROOT)}: link to missing {target}")
    return problems


def markdown(dirs):
    for d in dirs:
        for name in sorted(os.listdir(d)):
            if name.endswith(".md"):
                yield os.path.join(d, name)


class CheckerCatchesBadReferences(unittest.TestCase):
    """The checks below would pass vacuously if the checker accepted anything."""

    def test_a_bogus_function_fails(self):
        self.assertTrue(check_text("see `models/async/main.c:no_such_function`", "t"))

    def test_a_missing_file_fails(self):
        self.assertTrue(check_text("see `models/async/nowhere.c:main`", "t"))
        self.assertTrue(check_text("see `common/nowhere.h`", "t"))

    def test_a_prototype_is_not_a_definition(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "x.c"), "w") as f:
                f.write("int only_declared(int a);\nstatic void defined(void)\n{\n}\n"
                        "int split(int a,\n          int b)\n{\n    return only_declared(a);\n}\n")
            self.assertTrue(check_text("`x.c:only_declared`", "t", root=d))
            self.assertFalse(check_text("`x.c:defined` and `x.c:split`", "t", root=d))

    def test_a_real_reference_passes(self):
        self.assertEqual(check_text("`models/async/main.c:on_connection` and "
                                    "`common/gil.c:gil_tick()`", "t"), [])


class CheckCatchesStaleDocs(unittest.TestCase):
    """make.py --check on a copy of docs/ where a number was typed by hand."""

    def check_copy(self, edit):
        with tempfile.TemporaryDirectory() as d:
            shutil.copytree(DOCS, os.path.join(d, "docs"))
            os.makedirs(os.path.join(d, "bench"))
            for f in ("report.py", "variants.py"):  # report.py imports variants
                shutil.copy(os.path.join(ROOT, "bench", f), os.path.join(d, "bench"))
            path = os.path.join(d, "docs", "gil.md")
            with open(path, encoding="utf-8") as f:
                text = f.read()
            with open(path, "w", encoding="utf-8") as f:
                f.write(edit(text))
            return subprocess.run([sys.executable, os.path.join(d, "docs", "figures", "make.py"),
                                   "--check"], capture_output=True, text=True)

    def test_the_copy_itself_is_in_sync(self):
        self.assertEqual(self.check_copy(lambda t: t).returncode, 0)

    def test_a_hand_edited_number_fails(self):
        edit = lambda t: re.sub(r"(<!-- num:cpu/c=2/async/rate -->)[^<]*", r"\g<1>12345", t)
        p = self.check_copy(edit)
        self.assertEqual(p.returncode, 1)
        self.assertIn("out of date: docs/gil.md", p.stderr)

    def test_an_unknown_key_fails(self):
        p = self.check_copy(lambda t: t + "\n<!-- num:cpu/c=2/async/nonsense --><!-- /num -->\n")
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown number key", p.stderr)


class PartialRuns(unittest.TestCase):
    """A `--scenarios` run speaks for its own scenarios, not for the rest."""

    def test_a_partial_run_replaces_only_its_scenarios(self):
        with tempfile.TemporaryDirectory() as d:
            shutil.copytree(DOCS, os.path.join(d, "docs"))
            os.makedirs(os.path.join(d, "bench"))
            for f in ("report.py", "variants.py"):
                shutil.copy(os.path.join(ROOT, "bench", f), os.path.join(d, "bench"))
            with open(os.path.join(DOCS, "figures", "full", "results.json"), encoding="utf-8") as f:
                doc = json.load(f)
            doc["scenarios"] = ["shutdown"]
            doc["runs"] = [r for r in doc["runs"] if r.get("scenario") == "shutdown"]
            for r in doc["runs"]:
                if r.get("variant") == "async" and r.get("shutdown"):
                    r["shutdown"]["exit_s"] = 0.123
            for a in doc.get("anchors") or {}:
                doc["anchors"][a] = None  # a partial run's anchors must not be used
            src = os.path.join(d, "run")
            os.makedirs(src)
            with open(os.path.join(src, "results.json"), "w", encoding="utf-8") as f:
                json.dump(doc, f)
            make = os.path.join(d, "docs", "figures", "make.py")
            p = subprocess.run([sys.executable, make, src], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(os.path.isfile(os.path.join(d, "docs", "figures", "full-shutdown",
                                                        "results.json")))
            self.assertTrue(os.path.isfile(os.path.join(d, "docs", "figures", "full",
                                                        "results.json")), "the whole run stays")
            with open(os.path.join(d, "docs", "c10k.md"), encoding="utf-8") as f:
                c10k = f.read()
            self.assertIn("<!-- num:shutdown/n=10000/async/exit_s -->0.123<!-- /num -->", c10k)
            with open(os.path.join(d, "docs", "figures", "shutdown.md"), encoding="utf-8") as f:
                frag = f.read()
            self.assertIn("--full --scenarios shutdown", frag)
            for name in ("anchors.md", "idle.md", "seat.md"):
                with open(os.path.join(DOCS, "figures", name), encoding="utf-8") as f:
                    before = f.read()
                with open(os.path.join(d, "docs", "figures", name), encoding="utf-8") as f:
                    self.assertEqual(f.read(), before, name + " changed")


class Docs(unittest.TestCase):
    def test_code_references_exist(self):
        problems, refs = [], 0
        for path in markdown([DOCS, FIGS]):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            refs += len(CODE_REF.findall(text))
            problems += check_text(text, os.path.relpath(path, ROOT))
        self.assertEqual(problems, [])
        self.assertGreater(refs, 30, "the guide should point into the code")

    def test_links_resolve(self):
        problems = []
        for path in list(markdown([DOCS])) + [os.path.join(ROOT, "README.md")]:
            with open(path, encoding="utf-8") as f:
                problems += check_links(f.read(), path)
        self.assertEqual(problems, [])

    def test_every_fragment_names_an_existing_results_file(self):
        fragments = [p for p in markdown([FIGS])]
        self.assertTrue(fragments)
        for path in fragments:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            sources = SOURCE.findall(text)
            if not sources:
                self.assertIn("not measured in this run", text, path)
            for s in sources:
                self.assertTrue(os.path.isfile(os.path.join(ROOT, s)), f"{path}: {s}")

    def test_every_plot_sits_next_to_its_results(self):
        for path in markdown([DOCS]):
            with open(path, encoding="utf-8") as f:
                for target in LINK.findall(f.read()):
                    if target.endswith(".png") and target.startswith("figures/"):
                        run = os.path.dirname(os.path.join(DOCS, target))
                        self.assertTrue(os.path.isfile(os.path.join(run, "results.json")),
                                        f"{path}: {target} has no results.json beside it")

    def test_docs_in_sync_with_results(self):
        p = subprocess.run([sys.executable, os.path.join(FIGS, "make.py"), "--check"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    unittest.main()
