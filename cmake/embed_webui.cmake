# cmake -DINPUT_DIR=<webui> -DOUTPUT=<file.cpp> -P embed_webui.cmake
# Turns the web page's hand-written files into a C++ source of byte arrays (server/webui_assets.h),
# so `snug serve` carries its page and needs no files, network or CDN at run time. Run by the
# server library's build whenever a file under webui/ changes.
file(GLOB files RELATIVE ${INPUT_DIR} ${INPUT_DIR}/*)
list(SORT files)
set(body "")
set(table "")
set(index 0)
foreach(name IN LISTS files)
  if(IS_DIRECTORY ${INPUT_DIR}/${name})
    continue()
  endif()
  get_filename_component(ext ${name} LAST_EXT)
  if(ext STREQUAL ".html")
    set(type "text/html; charset=utf-8")
  elseif(ext STREQUAL ".js")
    set(type "text/javascript; charset=utf-8")
  elseif(ext STREQUAL ".css")
    set(type "text/css; charset=utf-8")
  elseif(ext STREQUAL ".svg")
    set(type "image/svg+xml")
  elseif(ext STREQUAL ".png")
    set(type "image/png")
  else()
    continue()  # notes and the like stay out of the binary
  endif()
  file(READ ${INPUT_DIR}/${name} hex HEX)
  string(LENGTH "${hex}" hex_length)
  math(EXPR size "${hex_length} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  # Lines of 32 bytes keep the generated file readable by editors and diff tools.
  string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){32})" "\\1\n" bytes "${bytes}")
  string(APPEND body "const unsigned char kAsset${index}[] = {\n${bytes}0x00};\n")
  string(APPEND table "    {\"/${name}\", \"${type}\", kAsset${index}, ${size}},\n")
  math(EXPR index "${index} + 1")
endforeach()
set(content "// Generated from webui/ by cmake/embed_webui.cmake: do not edit.
#include \"server/webui_assets.h\"

namespace snug::server {
namespace {
${body}
const WebAsset kAssets[] = {
${table}};
}  // namespace

std::span<const WebAsset> WebAssets() {
  return kAssets;
}

}  // namespace snug::server
")
# Rewritten only when different, so an unchanged page does not recompile the server.
if(EXISTS ${OUTPUT})
  file(READ ${OUTPUT} old)
  if(old STREQUAL content)
    return()
  endif()
endif()
file(WRITE ${OUTPUT} "${content}")
