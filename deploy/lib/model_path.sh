# shellcheck shell=bash
# Model staging shared by the serving images' startup scripts.
#
# The model to serve is the newest numeric version folder that holds saved_model.pb (TFX's
# Pusher writes pushed_model/<unix-seconds>/; DESIGN bug 8 passed the parent, and a newer
# folder without saved_model.pb -- an interrupted push -- must not win). MODEL_PATH may also
# name the versioned folder itself. Same rule as trainyard_core::deployment::versioned_model_path.

# pick_model_dir BASE < listing
#   Reads paths of saved_model.pb files (one per line, as `find` or `gsutil ls` prints them)
#   and prints the folder to serve: BASE itself when BASE/saved_model.pb is listed, else the
#   BASE/<digits> folder with the largest number. Fails when there is none.
pick_model_dir() {
    local base=${1%/} line dir leaf best="" best_v=-1 own=""
    while IFS= read -r line; do
        line=${line%/}
        dir=${line%/saved_model.pb}
        [ "$dir" != "$line" ] || continue
        if [ "$dir" = "$base" ]; then
            own=$dir
            continue
        fi
        [ "${dir%/*}" = "$base" ] || continue
        leaf=${dir##*/}
        case $leaf in
            '' | *[!0-9]*) continue ;;
        esac
        if [ $((10#$leaf)) -gt "$best_v" ]; then
            best_v=$((10#$leaf))
            best=$dir
        fi
    done
    if [ -n "$own" ]; then
        printf '%s\n' "$own"
    elif [ -n "$best" ]; then
        printf '%s\n' "$best"
    else
        echo "ERROR: no saved_model.pb in $base or in a numeric version folder under it" >&2
        return 1
    fi
}

# version_of DIR: the folder's number (TF Serving's version), 1 when it is not numeric.
version_of() {
    local leaf=${1%/}
    leaf=${leaf##*/}
    case $leaf in
        '' | *[!0-9]*) echo 1 ;;
        *) echo $((10#$leaf)) ;;
    esac
}

# stage_model SRC DEST_BASE
#   Copies the model to serve from SRC (gs://... or a local dir) to DEST_BASE/<version>/ (the
#   layout tensorflow_model_server and trainyard-serve read) and prints that folder.
stage_model() {
    local src=${1%/} dest_base=${2%/} picked version
    case $src in
        gs://*)
            # gsutil ls fails when one of its URLs matches nothing, and one always does (the
            # parent has no saved_model.pb, a version folder no version folders): only the
            # listing counts (pick_model_dir fails when it holds no model).
            picked=$({ gsutil ls "$src/saved_model.pb" "$src/*/saved_model.pb" 2>/dev/null || true; } |
                pick_model_dir "$src") || return 1
            ;;
        *)
            [ -d "$src" ] || {
                echo "ERROR: MODEL_PATH $src is not a directory" >&2
                return 1
            }
            picked=$(find "$src" -mindepth 1 -maxdepth 2 -name saved_model.pb -type f |
                pick_model_dir "$src") || return 1
            ;;
    esac
    version=$(version_of "$picked")
    echo "Serving $picked as version $version" >&2
    mkdir -p "$dest_base/$version"
    case $src in
        gs://*) gsutil -m -q cp -r "$picked/*" "$dest_base/$version/" ;;
        *) cp -r "$picked/." "$dest_base/$version/" ;;
    esac
    [ -f "$dest_base/$version/saved_model.pb" ] || {
        echo "ERROR: saved_model.pb not found after copying $picked" >&2
        return 1
    }
    printf '%s\n' "$dest_base/$version"
}
