# kvd_add_plugin(<engine|frontend> <name> SOURCES ... [LIBS ...])
#
# Builds kvd_<kind>_<name>.so as a MODULE library into ${build}/plugins (so
# the build tree works uninstalled) with hidden visibility: the entry object
# marked KVD_EXPORT is the only exported symbol, which a CTest checks.
function(kvd_add_plugin kind name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBS" ${ARGN})
  set(target kvd_${kind}_${name})
  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    C_STANDARD 11
    C_EXTENSIONS OFF
    C_VISIBILITY_PRESET hidden
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY ${KVD_PLUGIN_BUILD_DIR})
  target_link_libraries(${target} PRIVATE kvd_headers kvd_warnings
                        Threads::Threads ${P_LIBS})
  # Catch unresolved symbols at link time, except under ASan, whose runtime
  # lives in the executable (-z defs and ASan do not mix).
  if(NOT CMAKE_BUILD_TYPE STREQUAL "Asan" AND NOT KVD_FUZZ)
    target_link_options(${target} PRIVATE -Wl,--no-undefined)
  endif()
  install(TARGETS ${target} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/kvd)
  set_property(GLOBAL APPEND PROPERTY KVD_${kind}_PLUGINS ${name})
endfunction()
