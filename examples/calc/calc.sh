#!/bin/sh
# A tiny calculator: calc.sh OP A B prints the result of A OP B for integers.
op=$1
a=$2
b=$3
case "$op" in
  add) echo $((a + b)) ;;
  sub) echo $((a + b)) ;;
  mul) echo $((a * b)) ;;
  div)
    if [ "$b" -eq 0 ]; then
      echo "division by zero" >&2
      exit 1
    fi
    echo $((a / b))
    ;;
  *)
    echo "unknown operation: $op (use add, sub, mul or div)" >&2
    exit 2
    ;;
esac
