//! The demo's sample project, its issue, the scripted agent that fixes it, and the diff.

use std::path::Path;

use super::DemoError;

/// The issue the demo files.
pub const ISSUE_TITLE: &str = "greet() ignores the name it is given";
/// Its body.
pub const ISSUE_BODY: &str = "`greet(\"Ada\")` returns `Hello, world` but should return \
`Hello, Ada!`. `python3 test_greet.py` shows the failure.";

/// The `script` agent: reads its task, makes the fix, runs the project's test.
pub const AGENT_SCRIPT: &str = r#"set -eu
cd /workspace
# Every file left in the work tree is committed: no bytecode caches.
export PYTHONDONTWRITEBYTECODE=1
echo "agent: task file has $(wc -l < /paddock/task.md) lines"
python3 - <<'PY'
import pathlib
p = pathlib.Path("greet.py")
p.write_text(p.read_text().replace('return "Hello, world"', 'return f"Hello, {name}!"'))
PY
python3 test_greet.py
echo "agent: greet() now uses the name"
"#;

const FILES: &[(&str, &str)] = &[
    (
        "README.md",
        "# sample\n\nA tiny project for `paddock demo`.\n\nRun the test: `python3 test_greet.py`\n",
    ),
    (
        "greet.py",
        "def greet(name):\n    \"\"\"Greets `name`.\"\"\"\n    return \"Hello, world\"\n",
    ),
    (
        "test_greet.py",
        "from greet import greet\n\nassert greet(\"Ada\") == \"Hello, Ada!\", greet(\"Ada\")\nprint(\"ok\")\n",
    ),
];

fn git(e: git2::Error) -> DemoError {
    DemoError::Step(format!("sample repository: {}", e.message()))
}

/// Creates the bare repository with one commit on `main`.
pub fn seed(bare: &Path) -> Result<(), DemoError> {
    let repo = git2::Repository::init_bare(bare).map_err(git)?;
    let mut tb = repo.treebuilder(None).map_err(git)?;
    for (name, text) in FILES {
        let blob = repo.blob(text.as_bytes()).map_err(git)?;
        tb.insert(name, blob, 0o100_644).map_err(git)?;
    }
    let tree = repo.find_tree(tb.write().map_err(git)?).map_err(git)?;
    let sig = git2::Signature::now("Paddock demo", "demo@paddock.invalid").map_err(git)?;
    repo.commit(
        Some("refs/heads/main"),
        &sig,
        &sig,
        "Sample project",
        &tree,
        &[],
    )
    .map_err(git)?;
    repo.set_head("refs/heads/main").map_err(git)?;
    Ok(())
}

/// The patch from `base` to `branch` in the bare repository.
pub fn diff(bare: &Path, base: &str, branch: &str) -> Result<String, DemoError> {
    let repo = git2::Repository::open_bare(bare).map_err(git)?;
    let tree = |name: &str| -> Result<git2::Tree<'_>, DemoError> {
        repo.find_reference(&format!("refs/heads/{name}"))
            .and_then(|r| r.peel_to_tree())
            .map_err(git)
    };
    let (a, b) = (tree(base)?, tree(branch)?);
    let d = repo
        .diff_tree_to_tree(Some(&a), Some(&b), None)
        .map_err(git)?;
    let mut out = String::new();
    d.print(git2::DiffFormat::Patch, |_, _, line| {
        if matches!(line.origin(), '+' | '-' | ' ') {
            out.push(line.origin());
        }
        out.push_str(&String::from_utf8_lossy(line.content()));
        true
    })
    .map_err(git)?;
    Ok(out)
}
