#!/usr/bin/env bash
# Copies Sheaf's /sys/kernel/slab to a host directory, for Linux's tools/mm/slabinfo.
#
#     tools/slabinfo/dump-sysfs.sh DEST [LAUNCHER OPTIONS...]
#     tools/slabinfo/dump-sysfs.sh /tmp/slab --append slub_debug=U
#
# Boots Sheaf once (`cargo run -q -- OPTIONS`) and drives its shell: `ls` of
# /sys/kernel/slab and of every directory under it, then `cat` of every file, and rebuilds
# the tree under DEST (directories, files, and a link for each `name -> target` that `ls`
# prints). DEST must not exist. Then, as root:
#
#     unshare -m sh -c 'mount --bind DEST /sys/kernel/slab && slabinfo -a'
#
# The shell echoes each command after its prompt (`sheaf> cmd`); after each batch of commands
# the script sends `echo MARKER` and reads up to the line MARKER. The whole copy is of one
# boot, taken while the kernel runs on (the counters move a little between files, as they do
# when Linux's slabinfo reads them one by one).
set -euo pipefail

if [[ $# -lt 1 || $1 == -* ]]; then
    echo "usage: $0 DEST [LAUNCHER OPTIONS...]" >&2
    exit 2
fi
dest=$1
shift
if [[ -e $dest ]]; then
    echo "$0: $dest exists" >&2
    exit 1
fi
# Absolute: the script runs Cargo from the repository's root.
[[ $dest == /* ]] || dest=$PWD/$dest
cd "$(dirname "$0")/../.."
root=/sys/kernel/slab

coproc VM { exec cargo run -q -- "$@" 2>&1; }
# Our own copies: bash closes VM's descriptors and unsets its variables when it ends.
# shellcheck disable=SC2153 # VM_PID is set by coproc
vm_pid=$VM_PID
exec {to_vm}>&"${VM[1]}" {from_vm}<&"${VM[0]}"
marker_n=0

# Sends the commands given (one per argument), then reads their output (the lines between
# the echoed commands) into the array `out`, each command's output starting after a line
# `@@CMD N@@` (N its index).
batch() {
    local i line
    marker_n=$((marker_n + 1))
    local end="@@END $marker_n@@"
    i=0
    for cmd in "$@"; do
        printf 'echo @@CMD %d@@\n%s\n' "$i" "$cmd" >&"$to_vm"
        i=$((i + 1))
    done
    printf 'echo %s\n' "$end" >&"$to_vm"
    out=()
    while IFS= read -r line <&"$from_vm"; do
        line=${line%$'\r'}
        [[ $line == "$end" ]] && return 0
        # The shell's echo of a typed command, and the boot log before the first marker.
        [[ $line == "sheaf> "* || $line == "sheaf>" ]] && continue
        out+=("$line")
    done
    echo "$0: the kernel stopped before $end" >&2
    exit 1
}

# The output of command N of the last batch.
output_of() {
    local n=$1 on=0 line
    for line in "${out[@]}"; do
        if [[ $line == "@@CMD "*"@@" ]]; then
            [[ $line == "@@CMD $n@@" ]] && on=1 || on=0
            continue
        fi
        ((on)) && printf '%s\n' "$line"
    done
    return 0
}

mkdir -p "$dest"
dirs=("")
files=()
# Breadth first: list each directory, make its entries.
while ((${#dirs[@]})); do
    cmds=()
    for d in "${dirs[@]}"; do cmds+=("ls $root$d"); done
    batch "${cmds[@]}"
    next=()
    for i in "${!dirs[@]}"; do
        d=${dirs[$i]}
        while IFS= read -r entry; do
            [[ -z $entry ]] && continue
            if [[ $entry == *" -> "* ]]; then
                ln -s "${entry#* -> }" "$dest$d/${entry%% -> *}"
            elif [[ $entry == */ ]]; then
                mkdir "$dest$d/${entry%/}"
                next+=("$d/${entry%/}")
            elif [[ $entry == "ls: "* ]]; then
                echo "$0: $entry" >&2
            else
                files+=("$d/$entry")
            fi
        done < <(output_of "$i")
    done
    dirs=("${next[@]}")
done

# `cat` every file, 64 at a time (a few KiB of commands: QEMU's output
# pipe never fills while this script is still writing).
for ((start = 0; start < ${#files[@]}; start += 64)); do
    chunk=("${files[@]:start:64}")
    cmds=()
    for f in "${chunk[@]}"; do cmds+=("cat $root$f"); done
    batch "${cmds[@]}"
    for i in "${!chunk[@]}"; do
        output_of "$i" >"$dest${chunk[$i]}"
    done
done

printf 'poweroff\n' >&"$to_vm"
while IFS= read -r _ <&"$from_vm"; do :; done
wait "$vm_pid" || true
n_dirs=$(find "$dest" -mindepth 1 -type d | wc -l)
n_links=$(find "$dest" -mindepth 1 -type l | wc -l)
echo "$dest: ${#files[@]} files, $n_dirs directories, $n_links links" >&2
