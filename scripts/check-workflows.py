"""The checks of scripts/check-workflows that a schema cannot make (run it through that script).

usage: check-workflows.py MAKEFILE WORKFLOW...
"""

import re
import subprocess
import sys

from ruamel.yaml import YAML

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
MATRIX_REF = re.compile(r"\bmatrix\.([A-Za-z_][A-Za-z0-9_-]*)")
MAKE_CALL = re.compile(r"(?:^|[\s;&|(])make((?:[ \t]+[^\s;&|)#]+)*)")


def makefile_targets(path):
    with open(path) as makefile:
        return {m.group(1) for m in re.finditer(r"^([a-z0-9-]+):", makefile.read(), re.M)}


def shellcheck(script, shell, where):
    # GitHub substitutes ${{ }} before the shell runs: stand in a plain word for each.
    text = EXPRESSION.sub("EXPR", script)
    result = subprocess.run(
        ["shellcheck", "--shell", shell, "--format", "gcc", "-"],
        input=text, capture_output=True, text=True,
    )
    return [f"{where}: shellcheck: {line.split(':', 3)[-1].strip()}"
            for line in result.stdout.splitlines()]


def check(workflow, targets):
    problems = []
    with open(workflow) as file:
        doc = YAML(typ="safe").load(file)
    for job_id, job in (doc.get("jobs") or {}).items():
        matrix = ((job.get("strategy") or {}).get("matrix") or {})
        matrix_names = set(matrix) - {"include", "exclude"}
        for entry in matrix.get("include") or []:
            matrix_names |= set(entry)
        # GitHub's default shell: bash on a Linux runner, sh inside a job container.
        default_shell = ((job.get("defaults") or {}).get("run") or {}).get("shell")
        default_shell = default_shell or ("sh" if job.get("container") else "bash")
        for name in MATRIX_REF.findall(str(job)):
            if name not in matrix_names:
                problems.append(f"{workflow}: job {job_id}: matrix.{name} is not in its matrix")
        for index, step in enumerate(job.get("steps") or []):
            script = step.get("run")
            if script is None:
                continue
            where = f"{workflow}: job {job_id}, step {step.get('name') or index + 1}"
            shell = step.get("shell", default_shell)
            if shell in ("bash", "sh"):
                problems += shellcheck(script, shell, where)
            for call in MAKE_CALL.finditer(script):
                for word in call.group(1).split():
                    if word.startswith("-") or "=" in word:
                        continue
                    if word not in targets:
                        problems.append(f"{where}: make {word}: the Makefile has no target {word}")
    return problems


def main():
    targets = makefile_targets(sys.argv[1])
    problems = [p for workflow in sys.argv[2:] for p in check(workflow, targets)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        sys.exit(f"check-workflows: {len(problems)} problem(s)")
    print(f"check-workflows: {', '.join(sys.argv[2:])}: shell scripts, make targets and matrix names fine")


main()
