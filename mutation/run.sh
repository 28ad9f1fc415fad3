#!/usr/bin/env bash
# Mutation check of the Krmx core and driver: applies each mutant of mutants.txt to a private
# worktree of HEAD, runs its test set, and reports which mutants the tests catch.
# Usage: mutation/run.sh [ID...]      (or MUTANTS=id1,id2 mutation/run.sh); see README.md.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${REPO:-$(git -C "$HERE" rev-parse --show-toplevel)}
WORK=${MUTATION_DIR:-/tmp/krmx-mutation}
TREE=$WORK/tree
LOGS=$WORK/logs
RESULTS=${MUTATION_RESULTS:-$WORK/results.md}
LIST=${MUTANTS_FILE:-$HERE/mutants.txt}
MUTATE=(python3 "$HERE/mutate.py")
export CARGO_TARGET_DIR=${MUTATION_TARGET:-$WORK/target}
export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=0
# Seconds a mutant's tests may run; empty: five times the set's baseline, 120..600.
MUTANT_TIMEOUT=${MUTANT_TIMEOUT:-}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1200}
# How often a command runs again after a failure that did not repeat when the test ran alone.
FLAKY_RETRIES=${FLAKY_RETRIES:-2}

# The test sets: commands run in order; the first failing command ends the set.
CORE_SET=(
  "cargo test -p krmx-core --tests -q"
  "cargo test -p krmx-tests --test simulation -q"
)
DRIVER_SET=(
  "cargo test -p krmx-driver -q"
  "cargo test -p krmx-tests --test mio --test smol --test hostile_mio --test hostile_smol -q"
)

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 2; }

set_commands() { # set -> the array name of its commands
  case $1 in
    core) echo CORE_SET ;;
    driver) echo DRIVER_SET ;;
    *) die "unknown test set '$1'" ;;
  esac
}

# ----- the private worktree at HEAD -----

# The commit to test: HEAD unless REV names another (a baseline that fails at HEAD).
REV=${REV:-HEAD}
HEAD_SHA=$(git -C "$REPO" rev-parse --verify -q "$REV^{commit}") || die "$REV is not a commit of $REPO"
mkdir -p "$WORK" "$LOGS"
if [[ -e $TREE ]]; then
  common_repo=$(cd "$(git -C "$REPO" rev-parse --git-common-dir)" && pwd)
  common_tree=$(cd "$(git -C "$TREE" rev-parse --git-common-dir 2>/dev/null || echo /nonexistent)" 2>/dev/null && pwd)
  [[ $common_repo == "$common_tree" && $(git -C "$TREE" rev-parse --show-toplevel) == "$TREE" ]] ||
    die "$TREE exists but is not a worktree of $REPO: remove it (and run 'git worktree prune')"
  git -C "$TREE" checkout -q --detach --force "$HEAD_SHA" || die "cannot move $TREE to $REV"
  git -C "$TREE" clean -q -fd
else
  git -C "$REPO" worktree prune
  git -C "$REPO" worktree add -q --detach "$TREE" "$HEAD_SHA" >/dev/null || die "cannot create the worktree $TREE"
fi
say "tree: $TREE at $(git -C "$TREE" log --oneline -1)"
say "target: $CARGO_TARGET_DIR"

# ----- which mutants -----

"${MUTATE[@]}" list "$LIST" >/dev/null || die "$LIST is malformed"
mapfile -t ALL < <("${MUTATE[@]}" list "$LIST" | cut -d' ' -f1)
if [[ $# -gt 0 ]]; then
  CHOSEN=("$@")
elif [[ -n ${MUTANTS:-} ]]; then
  IFS=, read -r -a CHOSEN <<<"$MUTANTS"
else
  CHOSEN=("${ALL[@]}")
fi
"${MUTATE[@]}" check "$LIST" "$TREE" "${CHOSEN[@]}" >/dev/null ||
  die "mutants.txt does not match the code at HEAD (see above): fix the list first"
declare -A NEEDED=()
for id in "${CHOSEN[@]}"; do NEEDED[$("${MUTATE[@]}" show "$LIST" "$id" set)]=1; done

# ----- running a set -----

CURRENT_FILE=""
# Puts the mutated file back, and anything the tests wrote into the tree too (proptest
# appends the seed of a failure to the tracked core/proptest-regressions/*.txt, which would
# otherwise feed the next mutants' runs).
restore() {
  if [[ -n $CURRENT_FILE ]]; then
    git -C "$TREE" checkout -q -- .
    git -C "$TREE" clean -q -fd
    CURRENT_FILE=""
  fi
}
trap 'restore' EXIT
trap 'say "interrupted"; restore; exit 130' INT TERM

# What cargo suggests to rerun the failing test binary of a log ("-p krmx-tests --test mio").
failing_target() {
  grep -m1 -o 'to rerun pass `[^`]*`' "$1" | sed -e 's/to rerun pass `//' -e 's/`$//'
}

# The first test in the failure list of a log.
failing_test() {
  local test
  test=$(grep -m1 -E '^---- .* stdout ----$' "$1" | sed -E 's/^---- (.*) stdout ----$/\1/')
  [[ -z $test ]] && test=$(grep -m1 -E '^test .* \.\.\. FAILED$' "$1" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/')
  echo "$test"
}

# The first failing test of a log: "<target>: <test> (+N more)" (or what is known).
first_failure() {
  local log=$1 target test more
  target=$(failing_target "$log")
  test=$(failing_test "$log")
  if [[ -z $test ]] && grep -q 'error: test failed' "$log"; then
    # No test reported a failure: the test binary itself died (a panic outside a test, an abort).
    test="(the test binary failed: $(grep -m1 -E 'process didn.t exit successfully|signal:' "$log" | cut -c1-80))"
  fi
  target=${target#-p }
  more=$(grep -c -E '^---- .* stdout ----$' "$log")
  ((more > 1)) && test="$test (+$((more - 1)) more)"
  echo "${target:-?}: ${test:-?}"
}

# build SET LOG: compiles the set's tests. Status 0, or 1 when it does not compile, 3 on timeout.
build() {
  local name cmd status
  name=$(set_commands "$1")
  local -n cmds=$name
  for cmd in "${cmds[@]}"; do
    echo "\$ $cmd --no-run" >>"$2"
    (cd "$TREE" && timeout -k 10 "$BUILD_TIMEOUT" $cmd --no-run) >>"$2" 2>&1
    status=$?
    [[ $status -eq 124 || $status -eq 137 ]] && return 3
    [[ $status -ne 0 ]] && return 1
  done
  return 0
}

# run_tests SET LOG SECONDS: runs the set within SECONDS. Status 0 (passed), 1 (failed) with
# FAILURE set to the failing test, 3 (timeout).
# A failing test is confirmed by running it again alone. A test that then passes failed by
# chance (a timing test on a loaded machine): it is noted in FLAKES and the command runs again,
# up to FLAKY_RETRIES times; the last result counts.
run_tests() {
  local log=$2 name cmd status left deadline out=$2.cmd attempt target test last=$((FLAKY_RETRIES + 1))
  name=$(set_commands "$1")
  local -n cmds=$name
  deadline=$((SECONDS + $3))
  for cmd in "${cmds[@]}"; do
    for ((attempt = 1; attempt <= last; attempt++)); do
      left=$((deadline - SECONDS))
      [[ $left -le 0 ]] && return 3
      echo "\$ $cmd" >>"$log"
      (cd "$TREE" && timeout -k 10 "$left" $cmd) >"$out" 2>&1
      status=$?
      cat "$out" >>"$log"
      if [[ $status -eq 124 || $status -eq 137 ]]; then
        echo "[timed out: $cmd]" >>"$log"
        return 3
      fi
      [[ $status -eq 0 ]] && break
      FAILURE=$(first_failure "$out")
      target=$(failing_target "$out")
      test=$(failing_test "$out")
      [[ $attempt -lt $last && -n $target && -n $test ]] || return 1
      left=$((deadline - SECONDS))
      [[ $left -le 0 ]] && return 3
      echo "\$ cargo test $target -q -- --exact '$test'   [confirming the failure]" >>"$log"
      (cd "$TREE" && timeout -k 10 "$left" cargo test $target -q -- --exact "$test") >"$out" 2>&1
      status=$?
      cat "$out" >>"$log"
      if [[ $status -eq 124 || $status -eq 137 ]]; then
        echo "[timed out: cargo test $target -- --exact $test]" >>"$log"
        return 3
      fi
      [[ $status -ne 0 ]] && return 1
      echo "[flaky: $FAILURE failed, then passed alone: running the command again]" >>"$log"
      FLAKES+=("${FAILURE%% (+*}")
    done
  done
  return 0
}

# ----- baseline -----

declare -A LIMIT=()
ALL_FLAKES=()
FAILURE=""
for set in core driver; do
  [[ -n ${NEEDED[$set]:-} ]] || continue
  log=$LOGS/baseline-$set.log
  : >"$log"
  say "baseline $set: building"
  build "$set" "$log" || die "baseline $set does not build: see $log"
  say "baseline $set: testing"
  FLAKES=()
  start=$SECONDS
  run_tests "$set" "$log" 1800 || die "baseline $set fails ($FAILURE): see $log"
  took=$((SECONDS - start))
  for flaky in "${FLAKES[@]}"; do say "baseline $set: flaky: $flaky"; done
  ALL_FLAKES+=("${FLAKES[@]}")
  rm -f "$log.cmd"
  if [[ -n $MUTANT_TIMEOUT ]]; then
    LIMIT[$set]=$MUTANT_TIMEOUT
  else
    limit=$((5 * took))
    ((limit < 120)) && limit=120
    ((limit > 600)) && limit=600
    LIMIT[$set]=$limit
  fi
  say "baseline $set: passed in ${took}s; a mutant's tests may take ${LIMIT[$set]}s"
done

# The baseline's tests may have written into the tree (see restore).
git -C "$TREE" checkout -q -- . && git -C "$TREE" clean -q -fd

# ----- the mutants -----

{
  echo "# Krmx mutation results"
  echo
  echo "Commit $(git -C "$TREE" log --oneline -1), $(date -u '+%Y-%m-%d %H:%M UTC'), logs in $LOGS."
  echo
  echo "| id | set | verdict | first failing test | seconds |"
  echo "|---|---|---|---|---|"
} >"$RESULTS.part"

caught=0 survived=0 unviable=0 timedout=0 errors=0
SURVIVORS=()
n=0
for id in "${CHOSEN[@]}"; do
  n=$((n + 1))
  set=$("${MUTATE[@]}" show "$LIST" "$id" set)
  file=$("${MUTATE[@]}" show "$LIST" "$id" file)
  log=$LOGS/$id.log
  {
    echo "mutant $id ($set): $("${MUTATE[@]}" show "$LIST" "$id" desc)"
    echo "file $file"
  } >"$log"
  start=$SECONDS
  [[ -z $(git -C "$TREE" status --porcelain) ]] || die "the tree is not clean before $id"
  CURRENT_FILE=$file
  "${MUTATE[@]}" apply "$LIST" "$TREE" "$id" >/dev/null || die "cannot apply $id"
  git -C "$TREE" diff -- "$file" >>"$log"
  failing=""
  FLAKES=()
  build "$set" "$log"
  case $? in
    0)
      run_tests "$set" "$log" "${LIMIT[$set]}"
      case $? in
        0) verdict=survived; survived=$((survived + 1)); SURVIVORS+=("$id") ;;
        1) verdict=caught; caught=$((caught + 1)); failing=$FAILURE ;;
        *) verdict=timeout; timedout=$((timedout + 1))
           failing="(no result within ${LIMIT[$set]}s: $(grep -m1 -o 'timed out: cargo test [^]]*' "$log" | sed 's/timed out: cargo test //'))" ;;
      esac
      ;;
    1) verdict=unviable; unviable=$((unviable + 1))
       failing=$(grep -m1 -E '^error(\[E[0-9]+\])?:' "$log" | cut -c1-100) ;;
    *) verdict=error; errors=$((errors + 1)); failing="(build timed out)" ;;
  esac
  if [[ ${#FLAKES[@]} -gt 0 ]]; then
    failing="${failing:+$failing; }flaky, passed alone: ${FLAKES[*]}"
    ALL_FLAKES+=("${FLAKES[@]}")
  fi
  restore
  rm -f "$log.cmd"
  [[ -z $(git -C "$TREE" status --porcelain) ]] || die "the tree was not restored after $id"
  took=$((SECONDS - start))
  failing=${failing//|/\\|}
  echo "| $id | $set | $verdict | ${failing:--} | $took |" >>"$RESULTS.part"
  say "[$n/${#CHOSEN[@]}] $id: $verdict${failing:+ ($failing)} in ${took}s"
done

viable=$((caught + timedout + survived))
{
  echo
  if [[ $viable -gt 0 ]]; then
    echo "Score: $((caught + timedout)) caught / $viable viable ($((100 * (caught + timedout) / viable))%):" \
      "$caught failed a test, $timedout timed out, $survived survived; $unviable unviable$([[ $errors -gt 0 ]] && echo ", $errors build errors")."
  else
    echo "Score: no viable mutant."
  fi
  if [[ ${#ALL_FLAKES[@]} -gt 0 ]]; then
    echo
    echo "Flaky tests (failed, then passed when run alone; the command was run again):"
    printf '%s\n' "${ALL_FLAKES[@]}" | sort | uniq -c | sed -E 's/^ *([0-9]+) (.*)$/- \2 (×\1)/'
  fi
  if [[ ${#SURVIVORS[@]} -gt 0 ]]; then
    echo
    echo "Survivors:"
    for id in "${SURVIVORS[@]}"; do
      echo "- $id: $("${MUTATE[@]}" show "$LIST" "$id" desc)"
    done
  fi
} >>"$RESULTS.part"
mv "$RESULTS.part" "$RESULTS"
echo
cat "$RESULTS"
