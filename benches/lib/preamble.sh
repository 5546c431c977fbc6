# Sourced by benches/cores.sh, cluster-load.sh and slot-migration.sh (from the repository
# root): what each of them did before handing over to its Python driver.
#
#   bench_args SCRIPT ARGS...   --no-build (build=no), -h/--help (prints SCRIPT's header
#                               comment, up to `set -euo`, and exits); the rest in `args`
#   bench_need HINT TOOL...     every TOOL on PATH, else "missing TOOL (HINT)" and exit 1
#   bench_build PACKAGE...      cargo build --release of the packages unless --no-build
#                               (a package whose binary FERROKV_SERVER or FERROKV_LOAD
#                               names is not built); sets `target` (release
#                               dir), `ferrokv` (FERROKV_SERVER or the built server) and
#                               `load` (FERROKV_LOAD or the built ferrokv-load), checks
#                               that the server is there
#   bench_banner                "ferrokv <commit>, <redis version>, <n> CPUs" on stderr

build=yes
args=()
redis=${REDIS_SERVER:-redis-server}

bench_args() {
    local script=$1
    shift
    for a in "$@"; do
        case "$a" in
            --no-build) build=no ;;
            -h|--help) sed -n '2,/^set -euo/p' "$script" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
            *) args+=("$a") ;;
        esac
    done
}

bench_need() {
    local hint=$1
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "missing $tool ($hint)" >&2; exit 1; }
    done
}

bench_build() {
    local p=()
    for pkg in "$@"; do
        case "$pkg" in
            ferrokv-server) [ -n "${FERROKV_SERVER:-}" ] && continue ;;
            ferrokv-load) [ -n "${FERROKV_LOAD:-}" ] && continue ;;
        esac
        p+=(-p "$pkg")
    done
    if [ "$build" = yes ] && [ ${#p[@]} -gt 0 ]; then
        cargo build --release -q "${p[@]}"
    fi
    target=${CARGO_TARGET_DIR:-target}/release
    ferrokv=${FERROKV_SERVER:-$target/ferrokv-server}
    load=${FERROKV_LOAD:-$target/ferrokv-load}
    [ -x "$ferrokv" ] || { echo "no ferrokv-server at $ferrokv" >&2; exit 1; }
}

bench_banner() {
    echo "ferrokv $(git rev-parse --short HEAD), $($redis --version | awk '{print $3}'), $(nproc) CPUs" >&2
}
