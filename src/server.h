/**
 * @file server.h
 * @brief Chapter 9's chat server: one model, many users, over HTTP (src/server.c).
 *
 * Part of the driver, like src/main.c: it is linked into the chapters' programs only, because it
 * calls the model interface (src/model.h). `build/ch09 --server -m FILE.gguf` serves chapter 9;
 * an earlier GGUF chapter serves too, one sequence at a time (model_forward_seqs()'s default).
 */
#ifndef LLAMABOOK_SERVER_H
#define LLAMABOOK_SERVER_H

/** Run the server with llama-server's options (argv holds "--server" somewhere); returns the exit status. */
int server_main(int argc, char **argv);

#endif
