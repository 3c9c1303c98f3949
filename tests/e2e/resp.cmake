# resp frontend and kv client tests. Included by tests/e2e/CMakeLists.txt.

# Parser unit test (label unit): the parser alone, no server.
if(TARGET kvd_resp_parse)
  add_executable(resp_parser_test ${CMAKE_CURRENT_LIST_DIR}/resp_parser_test.c)
  target_link_libraries(resp_parser_test PRIVATE kvd_resp_parse kvd_warnings
                        PkgConfig::CMOCKA)
  add_test(NAME unit.resp_parser COMMAND resp_parser_test)
  set_tests_properties(unit.resp_parser PROPERTIES LABELS unit
                       ENVIRONMENT "${KVD_TEST_ENV}")
endif()

# Reply encoder unit test (label unit): resp_reply.c alone.
if(TARGET kvd_frontend_resp)
  pkg_check_modules(RESP_LIBEVENT REQUIRED IMPORTED_TARGET libevent_core)
  add_executable(resp_reply_test ${CMAKE_CURRENT_LIST_DIR}/resp_reply_test.c
                 ${CMAKE_SOURCE_DIR}/frontends/resp/resp_reply.c)
  target_include_directories(resp_reply_test PRIVATE
                             ${CMAKE_SOURCE_DIR}/frontends/resp)
  target_link_libraries(resp_reply_test PRIVATE kvd_headers kvd_warnings
                        PkgConfig::RESP_LIBEVENT PkgConfig::CMOCKA m)
  add_test(NAME unit.resp_reply COMMAND resp_reply_test)
  set_tests_properties(unit.resp_reply PROPERTIES LABELS unit
                       ENVIRONMENT "${KVD_TEST_ENV}")
endif()

# End-to-end tests (label e2e): the real kvd with the resp frontend, driven
# by python3-redis, redis-cli, raw sockets and the kv client. Debian's
# python3 carries python3-redis; a python3 earlier on PATH (pyenv, venv)
# may not, so /usr/bin is preferred.
find_program(KVD_E2E_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT KVD_E2E_PYTHON)
  find_program(KVD_E2E_PYTHON NAMES python3)
endif()

if(TARGET kvd_frontend_resp AND TARGET kvd AND KVD_E2E_PYTHON)
  get_property(_resp_engines GLOBAL PROPERTY KVD_engine_PLUGINS)
  if(NOT _resp_engines)
    set(_resp_engines memory)
  endif()
  math(EXPR _resp_timeout "300 * ${KVD_TEST_TIMEOUT_SCALE}") # Tsan: x10
  # resp: the frontend; resp_tx: transactions (python3-redis pipelines,
  # WATCH loops, Lock, the bank invariant, MGET against transactions).
  foreach(engine ${_resp_engines})
    foreach(suite resp resp_tx)
      set(_resp_cmd ${KVD_E2E_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/${suite}_test.py)
      if(engine STREQUAL "redis")
        # The port of the fixture's server is known only once it runs:
        # `redis-cluster run` puts it in place of {redis_single}.
        set(_resp_cmd ${KVD_REDIS_RUN} env
            "KVD_ENGINE_OPTS=nodes=127.0.0.1:{redis_single}\;key_prefix={dir}/\;stats=scan\;command_timeout_ms=60000"
            ${_resp_cmd})
      endif()
      add_test(NAME e2e.${suite}.${engine} COMMAND ${_resp_cmd})
      set_tests_properties(e2e.${suite}.${engine} PROPERTIES LABELS e2e
        TIMEOUT ${_resp_timeout}
        ENVIRONMENT "${KVD_TEST_ENV};KVD_BIN=$<TARGET_FILE:kvd>;KVD_ENGINE=${engine}")
    endforeach()
  endforeach()
  # The redis engine runs against the single redis-server of tests/redis
  # (every batch atomic there, as the tests expect), under a key prefix of
  # its own so it can share that server with conformance.redis_single.
  foreach(suite resp resp_tx)
    if(TEST e2e.${suite}.redis AND KVD_REDIS_SERVER)
      set_tests_properties(e2e.${suite}.redis PROPERTIES
        FIXTURES_REQUIRED redis_single LABELS "e2e;redis")
    elseif(TEST e2e.${suite}.redis)
      set_tests_properties(e2e.${suite}.redis PROPERTIES DISABLED TRUE)
    endif()
  endforeach()
  # Announced bulk sizes must not reserve memory (issue 13, item 10).
  add_test(NAME e2e.resp_bigbulk
           COMMAND ${KVD_E2E_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/resp_bigbulk_test.py)
  set_tests_properties(e2e.resp_bigbulk PROPERTIES LABELS e2e TIMEOUT 120
    ENVIRONMENT "${KVD_TEST_ENV};KVD_BIN=$<TARGET_FILE:kvd>;KVD_ENGINE=memory")
  # SIGKILL during transactions of several SETs, sync = always: every
  # acknowledged EXEC whole after the restart, none in part.
  math(EXPR _resp_crash_timeout "600 * ${KVD_TEST_TIMEOUT_SCALE}")
  foreach(engine log lsm)
    if(engine IN_LIST _resp_engines)
      add_test(NAME e2e.resp_tx_crash.${engine}
               COMMAND ${KVD_E2E_PYTHON}
                       ${CMAKE_CURRENT_LIST_DIR}/resp_tx_crash.py)
      set_tests_properties(e2e.resp_tx_crash.${engine} PROPERTIES LABELS e2e
        TIMEOUT ${_resp_crash_timeout}
        ENVIRONMENT "${KVD_TEST_ENV};KVD_BIN=$<TARGET_FILE:kvd>;KVD_ENGINE=${engine}")
    endif()
  endforeach()
  if(TARGET kv)
    add_test(NAME e2e.kv
             COMMAND ${KVD_E2E_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/kv_test.py)
    set_tests_properties(e2e.kv PROPERTIES LABELS e2e TIMEOUT 120
      ENVIRONMENT "${KVD_TEST_ENV};KVD_BIN=$<TARGET_FILE:kvd>;KV_BIN=$<TARGET_FILE:kv>")
  endif()
endif()
