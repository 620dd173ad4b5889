#!/usr/bin/env bash
# Adds the built application to the desktop's menu for the current user (Linux).
#
#   packaging/install-desktop.sh [BUNDLE_DIR]   # default: dist/gradcam-inspector
#   packaging/install-desktop.sh --uninstall
#
# Writes $XDG_DATA_HOME/applications/gradcam-inspector.desktop (default ~/.local/share/...),
# whose Exec is the absolute path of BUNDLE_DIR/gradcam-inspector, and the icon into
# $XDG_DATA_HOME/icons/hicolor/<size>x<size>/apps/gradcam-inspector.png. Move the bundle
# folder afterwards and the entry points nowhere: run this again from the new place.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="gradcam-inspector"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
[[ "$DATA" == /* ]] || DATA="$HOME/.local/share"  # XDG: a relative value is ignored
APPS="$DATA/applications"
ICONS="$DATA/icons/hicolor"
SIZES=(16 24 32 48 64 128 256)

die() { echo "install-desktop: $*" >&2; exit 1; }

refresh_caches() {
    # Optional tools: menus pick the entry up without them, only later.
    if command -v update-desktop-database >/dev/null; then
        update-desktop-database -q "$APPS" || true
    fi
    if command -v gtk-update-icon-cache >/dev/null && [[ -f "$ICONS/index.theme" ]]; then
        gtk-update-icon-cache -q -t -f "$ICONS" || true
    fi
}

if [[ "${1:-}" == "--uninstall" ]]; then
    rm -f "$APPS/$NAME.desktop"
    for size in "${SIZES[@]}"; do
        rm -f "$ICONS/${size}x${size}/apps/$NAME.png"
    done
    refresh_caches
    echo "removed $APPS/$NAME.desktop and the $NAME icons"
    exit 0
fi

BUNDLE_ARG="${1:-$ROOT/dist/$NAME}"
[[ -d "$BUNDLE_ARG" ]] || die "no bundle folder at '$BUNDLE_ARG'; build it with packaging/build.sh"
BUNDLE="$(cd "$BUNDLE_ARG" && pwd)"
EXE="$BUNDLE/$NAME"
[[ -x "$EXE" ]] || die "'$EXE' is missing or not executable; is '$BUNDLE' a built bundle?"
# The desktop spec's Exec quoting would need these escaped twice over; refuse them instead.
case "$EXE" in
    *[\"\`\$\\]* | *$'\n'*) die "the bundle path '$BUNDLE' holds \" \` \$ \\ or a newline; move it" ;;
esac

icon_source() {  # the bundled icon of this size, else the repository's
    local size="$1" candidate
    for candidate in "$BUNDLE/_internal/resources/icons" "$BUNDLE/resources/icons" \
        "$ROOT/resources/icons"; do
        if [[ -f "$candidate/$NAME-$size.png" ]]; then
            echo "$candidate/$NAME-$size.png"
            return
        fi
    done
}

installed_icons=0
for size in "${SIZES[@]}"; do
    source_png="$(icon_source "$size")"
    [[ -n "$source_png" ]] || continue
    install -D -m 644 "$source_png" "$ICONS/${size}x${size}/apps/$NAME.png"
    installed_icons=$((installed_icons + 1))
done
((installed_icons > 0)) || die "no icon found (resources/icons/$NAME-256.png); run packaging/make_icon.py"

mkdir -p "$APPS"
entry="$APPS/$NAME.desktop"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
draft="$work/$NAME.desktop"  # the validator wants the .desktop name
exec_path="${EXE//%/%%}"  # a literal % in Exec is written %%
while IFS= read -r line || [[ -n "$line" ]]; do
    case "$line" in
        Exec=*) printf 'Exec="%s" %%f\n' "$exec_path" ;;
        TryExec=*) printf 'TryExec=%s\n' "$EXE" ;;
        *) printf '%s\n' "$line" ;;
    esac
done <"$ROOT/packaging/$NAME.desktop" >"$draft"
if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate --no-hints "$draft" || die "the generated entry is invalid (see above)"
fi
install -m 644 "$draft" "$entry"
refresh_caches
echo "installed $entry (Exec: $EXE) and $installed_icons icon sizes under $ICONS"
