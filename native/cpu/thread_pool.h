// A fixed pool of worker threads, created once per Postprocessor. ParallelFor runs task(i) for i in
// [0, n) on the workers and the calling thread, and returns when all are done.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rk {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);  // num_threads counts the caller; 1 = no workers
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void ParallelFor(int n, const std::function<void(int)>& task);

 private:
  void WorkerLoop();
  void RunTasks(const std::function<void(int)>* task, int n);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int)>* task_ = nullptr;
  int num_tasks_ = 0;
  std::atomic<int> next_{0};
  int active_ = 0;          // workers inside the current job
  unsigned generation_ = 0; // bumped per job so each worker joins a job once
  bool stop_ = false;
};

}  // namespace rk
