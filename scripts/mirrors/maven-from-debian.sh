#!/usr/bin/env bash
# Make a Maven repository (usable as DOCKYARD_MAVEN_MIRROR) from Debian's /usr/share/maven-repo,
# for machines that cannot reach Maven Central. Debian's repository holds links into
# /usr/share/java; a build sees only the mirror directory, so the copy resolves them.
# Its content is what the machine's Java packages installed (libjetty9-java, the
# libmaven-*-plugin-java plugins, ...).
#
#   bash scripts/mirrors/maven-from-debian.sh OUT_DIR
set -euo pipefail
out="${1:?usage: maven-from-debian.sh OUT_DIR}"
[ -d /usr/share/maven-repo ] || { echo "maven-from-debian: /usr/share/maven-repo is missing (apt-get install maven-repo-helper and the lib*-java packages)" >&2; exit 1; }
rm -rf "$out.tmp"
cp -rL /usr/share/maven-repo "$out.tmp"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "maven-from-debian: $(find "$out" -name '*.jar' | wc -l) jars in $out"
