# cmake -DIN=kvd.ini -DOUT=config_default.c -P embed_config.cmake
# Read as one string (not file(STRINGS), which splits on ';' and drops empty
# lines), escape, and emit one C string literal per line.
file(READ ${IN} text)
string(REPLACE "\\" "\\\\" text "${text}")
string(REPLACE "\"" "\\\"" text "${text}")
string(REPLACE "\n" "\\n\"\n    \"" text "${text}")
file(WRITE ${OUT}
"/* Generated from config/kvd.ini by cmake/embed_config.cmake; do not edit. */
#include \"core/config.h\"

const char kvd_config_default_text[] =
    \"${text}\";
")
