# check_headers.cmake -- compile every public header on its own.
#
# cmake -DCC=... -DINCLUDE_DIR=.../include -DWORK_DIR=... -P check_headers.cmake
#
# Each include/kvd/*.h must compile as the only include of a translation
# unit, as strict C11 (no GNU extensions, no _GNU_SOURCE) with every kvd
# warning as an error, so a third-party plugin can include any one of them
# first. The header list is read when the test runs, so a new header is
# checked without re-running cmake.
foreach(var CC INCLUDE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_headers.cmake: -D${var}=... is required")
  endif()
endforeach()

file(GLOB headers RELATIVE ${INCLUDE_DIR} ${INCLUDE_DIR}/kvd/*.h)
list(LENGTH headers count)
if(count EQUAL 0)
  message(FATAL_ERROR "no headers found in ${INCLUDE_DIR}/kvd")
endif()
file(MAKE_DIRECTORY ${WORK_DIR})

set(failed "")
foreach(h IN LISTS headers)
  string(MAKE_C_IDENTIFIER "${h}" id)
  set(src ${WORK_DIR}/${id}.c)
  # Twice: the include guard must make a second inclusion harmless.
  file(WRITE ${src} "#include \"${h}\"\n#include \"${h}\"\n")
  execute_process(
    COMMAND ${CC} -std=c11 -Wall -Wextra -Wpedantic -Werror -Wshadow
            -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla -Wundef
            -I${INCLUDE_DIR} -fsyntax-only ${src}
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE out
    ERROR_VARIABLE out)
  if(rc EQUAL 0)
    message(STATUS "ok      ${h}")
  else()
    message(STATUS "FAILED  ${h}\n${out}")
    list(APPEND failed ${h})
  endif()
endforeach()

if(failed)
  message(FATAL_ERROR "headers that do not compile alone: ${failed}")
endif()
message(STATUS "${count} headers compile alone as C11")
