#!/bin/sh
# Checks calc.sh against known cases; exits non-zero when any case fails.
cd "$(dirname "$0")" || exit 2
fails=0
total=0
check() {
  total=$((total + 1))
  got=$(sh ./calc.sh "$1" "$2" "$3" 2>&1)
  if [ "$got" = "$4" ]; then
    echo "ok   $1 $2 $3 = $4"
  else
    echo "FAIL $1 $2 $3: expected $4, got $got"
    fails=$((fails + 1))
  fi
}
check add 2 3 5
check sub 5 3 2
check mul 4 3 12
check div 8 2 4
echo "$((total - fails)) of $total cases ok"
[ "$fails" -eq 0 ]
