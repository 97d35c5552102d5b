# Shared by the cdi/roots/*.sh scripts that write the `.files` manifests (sourced, not run).
#
# A manifest lists what a driver installation puts on disk, one entry a line, paths absolute:
#   version VERSION                   the driver version the files are for
#   source TEXT                       where the list comes from (one or more lines)
#   package NAME VERSION              the entries that follow come from this package
#   file PATH MODE KIND               a regular file; KIND is one of
#        elf64:SONAME | elf32:SONAME  an x86_64 / i386 shared object with that SONAME
#        elf64 | elf32                a shared object without a SONAME (an X or GBM module)
#        exec                         an executable program
#        text:BASE64                  a small text file (JSON, .icd, .conf) and its content
#        data                         anything else (firmware, docs)
#   link PATH TARGET                  a symlink, TARGET exactly as the package makes it
# Package documentation (/usr/share/{doc,man,bug,lintian}) is left out.
# src/gpu/fixtures.rs materialises a manifest as a root of empty files, ELF stubs with the
# recorded SONAMEs, the text files' real content, and the links.

set -euo pipefail

die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }
log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

# kind_of FILE: the KIND field for a file on disk (extracted from a real package).
kind_of() {
  local file=$1 header soname class
  if header=$(readelf -h "$file" 2>/dev/null); then
    class=$(awk '/Class:/ { print ($2 == "ELF32") ? "elf32" : "elf64" }' <<<"$header")
    if grep -q 'Type:.*DYN' <<<"$header" && ! readelf -l "$file" 2>/dev/null | grep -q 'INTERP'; then
      soname=$(readelf -d "$file" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
      printf '%s%s\n' "$class" "${soname:+:$soname}"
    elif grep -qE 'Type:.*(EXEC|DYN)' <<<"$header"; then
      echo exec
    else
      echo data # relocatable ELF: GSP firmware
    fi
    return
  fi
  case $file in
    *.json | *.icd | *.conf)
      if [[ $(stat -c %s "$file") -le 4096 ]]; then
        printf 'text:%s\n' "$(base64 -w0 <"$file")"
        return
      fi
      ;;
  esac
  if [[ -x $file && $(head -c2 "$file") == '#!' ]]; then
    echo exec
  else
    echo data
  fi
}

# Whether a packaged path is documentation, which manifests leave out.
is_doc() {
  case $1 in
    /usr/share/doc/* | /usr/share/man/* | /usr/share/bug/* | /usr/share/lintian/*) return 0 ;;
  esac
  return 1
}
