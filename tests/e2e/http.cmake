# http frontend tests. Included by tests/e2e/CMakeLists.txt.
#
# e2e.http.<engine> (label e2e): http_test.sh against a real kvd, once per
# engine in KVD_HTTP_E2E_ENGINES that this build has (a name whose plugin
# target does not exist is skipped, so engines can be listed before they
# land), and e2e.http_txn.<engine>: ETags, conditional requests, POST
# /txn (http_txn_test.py). e2e.http_metrics.<engine>: /metrics by the
# Prometheus conventions (http_metrics_test.py). e2e.http_abuse: the frontend under abuse
# (http_abuse.py). unit.http_util, unit.http_parse and unit.http_reply
# (label unit): decoding helpers, the request parser and the reply
# encoder, no server.
set(KVD_HTTP_E2E_ENGINES "memory;log;lsm" CACHE STRING
    "engines the http frontend's end-to-end test runs against")

if(TARGET kvd_frontend_http)
  # 400 s: e2e.http takes about 100 s on a machine at load 30.
  math(EXPR _http_timeout "400 * ${KVD_TEST_TIMEOUT_SCALE}") # Tsan: x10
  foreach(engine ${KVD_HTTP_E2E_ENGINES})
    if(TARGET kvd_engine_${engine})
      add_test(NAME e2e.http.${engine}
               COMMAND ${CMAKE_CURRENT_LIST_DIR}/http_test.sh ${KVD_BIN}
                       ${KVD_PLUGIN_BUILD_DIR} ${engine})
      set_tests_properties(e2e.http.${engine} PROPERTIES LABELS e2e
                           ENVIRONMENT "${KVD_TEST_ENV}" TIMEOUT ${_http_timeout})
      # ETags, conditional writes and their races, POST /txn (with the
      # resp frontend beside it, for WATCH across frontends).
      if(TARGET kvd_frontend_resp)
        add_test(NAME e2e.http_txn.${engine}
                 COMMAND python3 ${CMAKE_CURRENT_LIST_DIR}/http_txn_test.py
                         ${KVD_BIN} ${KVD_PLUGIN_BUILD_DIR} ${engine})
        set_tests_properties(e2e.http_txn.${engine} PROPERTIES LABELS e2e
                             ENVIRONMENT "${KVD_TEST_ENV}" TIMEOUT ${_http_timeout})
      endif()
    endif()
  endforeach()

  # /metrics read by the Prometheus client's parser, checked against the
  # naming conventions, per engine (each names its own stats). Debian's
  # interpreter: python3-prometheus-client installs for it only.
  find_program(KVD_SYSTEM_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT KVD_SYSTEM_PYTHON3)
    set(KVD_SYSTEM_PYTHON3 python3)
  endif()
  if(TARGET kvd_frontend_resp)
    foreach(engine memory log lsm btree)
      if(TARGET kvd_engine_${engine})
        add_test(NAME e2e.http_metrics.${engine}
                 COMMAND ${KVD_SYSTEM_PYTHON3}
                         ${CMAKE_CURRENT_LIST_DIR}/http_metrics_test.py
                         ${KVD_BIN} ${KVD_PLUGIN_BUILD_DIR} ${engine})
        set_tests_properties(e2e.http_metrics.${engine} PROPERTIES
                             LABELS e2e ENVIRONMENT "${KVD_TEST_ENV}"
                             TIMEOUT ${_http_timeout})
      endif()
    endforeach()
    # The redis engine against the single redis-server of tests/redis
    # (its port is known once the fixture runs: `redis-cluster run` puts
    # it in place of {redis_single}).
    if(TARGET kvd_engine_redis AND KVD_REDIS_SERVER)
      set(_hm_cmd ${KVD_REDIS_RUN} env
          "KVD_ENGINE_OPTS=nodes=127.0.0.1:{redis_single}\;stats=scan\;command_timeout_ms=60000"
          ${KVD_SYSTEM_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/http_metrics_test.py
          ${KVD_BIN} ${KVD_PLUGIN_BUILD_DIR} redis)
      add_test(NAME e2e.http_metrics.redis COMMAND ${_hm_cmd})
      set_tests_properties(e2e.http_metrics.redis PROPERTIES
                           LABELS "e2e;redis" ENVIRONMENT "${KVD_TEST_ENV}"
                           TIMEOUT ${_http_timeout}
                           FIXTURES_REQUIRED redis_single)
    endif()
  endif()

  # The frontend under abuse (issue 13): huge queries, smuggling, slow
  # heads, connection floods. Bounded: about 20 s, 300 s at most.
  if(TARGET kvd_engine_memory)
    add_test(NAME e2e.http_abuse
             COMMAND python3 ${CMAKE_CURRENT_LIST_DIR}/http_abuse.py ${KVD_BIN}
                     ${KVD_PLUGIN_BUILD_DIR})
    set_tests_properties(e2e.http_abuse PROPERTIES LABELS e2e
                         ENVIRONMENT "${KVD_TEST_ENV}" TIMEOUT 300)
  endif()

  # The imported targets of frontends/http are local to that directory.
  pkg_check_modules(HTTPT_JANSSON REQUIRED IMPORTED_TARGET jansson)
  add_executable(http_util_test ${CMAKE_CURRENT_LIST_DIR}/http_util_test.c
                 ${PROJECT_SOURCE_DIR}/frontends/http/http_util.c
                 ${PROJECT_SOURCE_DIR}/frontends/http/http_parse.c)
  target_include_directories(http_util_test PRIVATE
                             ${PROJECT_SOURCE_DIR}/frontends/http)
  target_link_libraries(http_util_test PRIVATE kvd_headers kvd_warnings
                        PkgConfig::HTTPT_JANSSON PkgConfig::CMOCKA)
  add_test(NAME unit.http_util COMMAND http_util_test)
  set_tests_properties(unit.http_util PROPERTIES LABELS unit
                       ENVIRONMENT "${KVD_TEST_ENV}")

  add_executable(http_parse_test ${CMAKE_CURRENT_LIST_DIR}/http_parse_test.c
                 ${PROJECT_SOURCE_DIR}/frontends/http/http_parse.c)
  target_include_directories(http_parse_test PRIVATE
                             ${PROJECT_SOURCE_DIR}/frontends/http)
  target_link_libraries(http_parse_test PRIVATE kvd_headers kvd_warnings
                        PkgConfig::CMOCKA)
  add_test(NAME unit.http_parse COMMAND http_parse_test)
  set_tests_properties(unit.http_parse PROPERTIES LABELS unit
                       ENVIRONMENT "${KVD_TEST_ENV}")

  add_executable(http_reply_test ${CMAKE_CURRENT_LIST_DIR}/http_reply_test.c
                 ${PROJECT_SOURCE_DIR}/frontends/http/http_reply.c)
  target_include_directories(http_reply_test PRIVATE
                             ${PROJECT_SOURCE_DIR}/frontends/http)
  target_link_libraries(http_reply_test PRIVATE kvd_headers kvd_warnings
                        PkgConfig::HTTPT_JANSSON PkgConfig::CMOCKA)
  add_test(NAME unit.http_reply COMMAND http_reply_test)
  set_tests_properties(unit.http_reply PROPERTIES LABELS unit
                       ENVIRONMENT "${KVD_TEST_ENV}")
endif()
