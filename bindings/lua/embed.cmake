# Turn a Lua source into a C array: cmake -DIN=x.lua -DNAME=sym -DOUT=x.h -P embed.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" hex "${hex}")
file(WRITE "${OUT}" "/* Generated from ${IN}; do not edit. */\nstatic const unsigned char ${NAME}[] = {\n${hex}};\n")
