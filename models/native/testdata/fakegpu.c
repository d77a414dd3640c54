// A stand-in for libtensorflowlite_gpu_delegate.so, for tests on boxes
// without a GPU: it exports the GPU delegate V2 entry points, records the
// options and threads it is called with, and returns a delegate that takes
// no node (so the model runs on the CPU kernels). FAKE_GPU_FAIL makes
// Create return NULL; FAKE_GPU_REJECT makes the delegate's Prepare fail.
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int32_t is_precision_loss_allowed;
  int32_t inference_preference;
  int32_t inference_priority1;
  int32_t inference_priority2;
  int32_t inference_priority3;
  int64_t experimental_flags;
  int32_t max_delegated_partitions;
  const char *serialization_dir;
  const char *model_token;
} Options;

typedef struct Delegate {
  void *data_;
  int (*Prepare)(void *context, struct Delegate *delegate);
  void *CopyFromBufferHandle;
  void *CopyToBufferHandle;
  void *FreeBufferHandle;
  int64_t flags;
  void *opaque_delegate_builder;
} Delegate;

static Options last;
static char dir[1024], token[256];
static pthread_t create_thread, prepare_thread, delete_thread;
static int64_t creates, prepares, deletes;

Options TfLiteGpuDelegateOptionsV2Default(void) {
  Options o;
  memset(&o, 0, sizeof o);
  o.is_precision_loss_allowed = 0;
  o.inference_priority1 = 1; // MAX_PRECISION
  o.experimental_flags = 1;  // ENABLE_QUANT
  o.max_delegated_partitions = 1;
  return o;
}

static int prepare(void *context, Delegate *d) {
  (void)context;
  (void)d;
  prepare_thread = pthread_self();
  prepares++;
  return getenv("FAKE_GPU_REJECT") ? 1 : 0;
}

Delegate *TfLiteGpuDelegateV2Create(const Options *o) {
  if (getenv("FAKE_GPU_FAIL")) return NULL;
  last = *o;
  dir[0] = token[0] = 0;
  if (o->serialization_dir) strncpy(dir, o->serialization_dir, sizeof dir - 1);
  if (o->model_token) strncpy(token, o->model_token, sizeof token - 1);
  create_thread = pthread_self();
  creates++;
  Delegate *d = calloc(1, sizeof *d);
  d->Prepare = prepare;
  return d;
}

void TfLiteGpuDelegateV2Delete(Delegate *d) {
  delete_thread = pthread_self();
  deletes++;
  free(d);
}

// fake_gpu_state fills out with: precision loss allowed, inference
// preference, priority1, experimental flags, creates, prepares, deletes,
// and whether create, prepare and delete ran on one thread; and copies the
// serialization dir and model token.
void fake_gpu_state(int64_t *out, char *dir_out, char *token_out) {
  out[0] = last.is_precision_loss_allowed;
  out[1] = last.inference_preference;
  out[2] = last.inference_priority1;
  out[3] = last.experimental_flags;
  out[4] = creates;
  out[5] = prepares;
  out[6] = deletes;
  out[7] = pthread_equal(create_thread, prepare_thread) && pthread_equal(prepare_thread, delete_thread);
  strcpy(dir_out, dir);
  strcpy(token_out, token);
}
