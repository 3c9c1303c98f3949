# check_exports.cmake -- each plugin exports exactly its entry symbol.
#
# cmake -DNM=nm -DPLUGIN_DIR=... -P check_exports.cmake
#
# Lists the defined dynamic symbols (nm -D --defined-only) of every
# kvd_engine_*.so and kvd_frontend_*.so in PLUGIN_DIR. An engine must define
# kvd_engine_entry and nothing else, a frontend kvd_frontend_entry and
# nothing else: any other exported name could clash with the host or with
# another plugin, and means something lost its `static`.
foreach(var NM PLUGIN_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_exports.cmake: -D${var}=... is required")
  endif()
endforeach()

file(GLOB plugins ${PLUGIN_DIR}/kvd_engine_*.so ${PLUGIN_DIR}/kvd_frontend_*.so)
list(LENGTH plugins count)
if(count EQUAL 0)
  message(FATAL_ERROR "no plugins in ${PLUGIN_DIR}: build first")
endif()

set(failed "")
foreach(p IN LISTS plugins)
  get_filename_component(base ${p} NAME)
  if(base MATCHES "^kvd_engine_")
    set(entry kvd_engine_entry)
  else()
    set(entry kvd_frontend_entry)
  endif()
  execute_process(COMMAND ${NM} -D --defined-only ${p}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(STATUS "FAILED  ${base}: nm: ${err}")
    list(APPEND failed ${base})
    continue()
  endif()
  # Lines are "ADDRESS TYPE NAME"; keep the names.
  string(REGEX REPLACE "\n$" "" out "${out}")
  string(REPLACE "\n" ";" lines "${out}")
  set(names "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^[0-9a-fA-F]* *[A-Za-z] +([^ ]+)$")
      set(name ${CMAKE_MATCH_1})
      # AddressSanitizer adds an ODR indicator next to every exported
      # global (__odr_asan.<name>); it is the compiler's, not the plugin's.
      if(NOT name MATCHES "^__odr_asan[._]")
        list(APPEND names ${name})
      endif()
    endif()
  endforeach()
  if(NOT names STREQUAL entry)
    message(STATUS "FAILED  ${base}: exports [${names}], expected only ${entry}")
    list(APPEND failed ${base})
  else()
    message(STATUS "ok      ${base}: ${names}")
  endif()
endforeach()

if(failed)
  message(FATAL_ERROR "plugins exporting more (or less) than their entry: ${failed}")
endif()
message(STATUS "${count} plugins export only their entry symbol")
