#include "thread_pool.h"

namespace rk {

ThreadPool::ThreadPool(int num_threads) {
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunTasks(const std::function<void(int)>* task, int n) {
  for (int i = next_.fetch_add(1); i < n; i = next_.fetch_add(1)) (*task)(i);
}

void ThreadPool::WorkerLoop() {
  unsigned seen = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    // A worker that wakes after its job has ended finds no task and goes back to sleep.
    const std::function<void(int)>* task = task_;
    const int n = task ? num_tasks_ : 0;
    ++active_;
    lock.unlock();
    if (n > 0) RunTasks(task, n);
    lock.lock();
    if (--active_ == 0) done_.notify_all();
  }
}

void ThreadPool::ParallelFor(int n, const std::function<void(int)>& task) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int i = 0; i < n; ++i) task(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    num_tasks_ = n;
    next_.store(0);
    ++generation_;
  }
  wake_.notify_all();
  RunTasks(&task, n);
  std::unique_lock<std::mutex> lock(mutex_);
  // Workers that woke late find no task left and leave at once; wait for those inside the job.
  done_.wait(lock, [&] { return active_ == 0; });
  task_ = nullptr;
  num_tasks_ = 0;
}

}  // namespace rk
